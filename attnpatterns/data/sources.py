"""One entry point that turns "where the texts come from" into examples plus a description for the manifest.

Sources: the built-in sample texts (``samples``: single sentences, pairs, or both), a user file (.txt, .csv, .tsv,
.jsonl), or a GLUE task split (hub, or a local classic-layout folder). ``limit`` keeps the first N examples (the paper
used 100 dev examples per task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from attnpatterns.data.files import read_input_file
from attnpatterns.data.glue import load_glue
from attnpatterns.data.records import InputError, TextExample
from attnpatterns.runfolder import file_sha256

SAMPLE_CHOICES = ("single", "pairs", "both")


def builtin_samples(which: str = "both") -> list[TextExample]:
    """The project's own sample texts: ids ``s<N>`` for single sentences and ``p<N>`` for pairs."""
    from attnpatterns.data.builtin import sample_pairs, sample_sentences

    if which not in SAMPLE_CHOICES:
        raise InputError(f"samples must be one of {', '.join(SAMPLE_CHOICES)}, not {which!r}.")
    out: list[TextExample] = []
    if which in ("single", "both"):
        out += [TextExample(f"s{i:03d}", t) for i, t in enumerate(sample_sentences())]
    if which in ("pairs", "both"):
        out += [TextExample(f"p{i:03d}", a, b) for i, (a, b) in enumerate(sample_pairs())]
    return out


def load_inputs(
    input_file: Path | str | None = None,
    glue_task: str | None = None,
    split: str = "validation",
    glue_dir: Path | str | None = None,
    samples: str | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    limit: int | None = None,
) -> tuple[list[TextExample], dict]:
    """Return ``(examples, description)``; with no source given, the built-in samples (both kinds)."""
    chosen = [x for x in (input_file, glue_task, samples) if x]
    if len(chosen) > 1:
        raise InputError("give one input source: a file, --glue TASK, or --samples; not several.")
    if limit is not None and limit < 1:
        raise InputError("--limit must be a positive number of examples.")
    if input_file:
        path = Path(input_file)
        examples = read_input_file(path, text_columns, label_column, id_column)
        description = {"source": "file", "path": str(path.resolve()), "sha256": file_sha256(path),
                       "text_columns": list(text_columns or []), "id_column": id_column}
    elif glue_task:
        examples = load_glue(glue_task, split, glue_dir)
        description = {"source": "glue", "task": glue_task, "split": split,
                       "glue_dir": None if glue_dir is None else str(Path(glue_dir).resolve())}
    else:
        which = samples or "both"
        examples = builtin_samples(which)
        description = {"source": "builtin-samples", "which": which}
    if not examples:
        raise InputError("the input holds no examples.")
    if limit is not None:
        examples = examples[:limit]
    description["limit"] = limit
    description["n_examples"] = len(examples)
    return examples, description
