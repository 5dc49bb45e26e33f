"""Built-in texts and labelled tasks that ship with attnpatterns, so every command works without a download.

Two kinds of data live next to this module (see ``README.md`` here): sample texts for attention-map extraction
(``sentences.txt``: one sentence per line; ``pairs.tsv``: ``sentence_a<TAB>sentence_b``) and two small labelled
classification tasks under ``tasks/<name>/{train,dev}.tsv`` that the pruning module fine-tunes on. All files are
UTF-8, tab-separated where tabular, with no tabs or quoting inside fields, and are read through
:mod:`importlib.resources` so they work from a wheel or a zip as well as from a source checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations; the module moved between Python versions
    from importlib.resources.abc import Traversable

#: File names of the sample texts, relative to this package.
SENTENCES_FILE = "sentences.txt"
PAIRS_FILE = "pairs.tsv"
#: Folder (relative to this package) that holds one sub-folder per task.
TASKS_DIR = "tasks"
#: Splits every built-in task provides.
SPLITS: tuple[str, ...] = ("train", "dev")


@dataclass(frozen=True)
class BuiltinTaskInfo:
    """What a built-in task looks like: its columns, what its labels mean, and how it is scored.

    ``text_columns`` holds one column for single-sentence tasks and two (first and second segment) for
    sentence-pair tasks; ``label_names[i]`` is the meaning of integer label ``i``.
    """

    name: str
    text_columns: tuple[str, ...]
    label_column: str
    label_names: tuple[str, ...]
    description: str
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if len(self.text_columns) not in (1, 2):
            raise ValueError(f"a task has one or two text columns, got {self.text_columns!r}")
        if self.label_column in self.text_columns:
            raise ValueError(f"label column {self.label_column!r} is also a text column")
        if len(self.label_names) < 2:
            raise ValueError(f"a classification task needs at least two labels, got {self.label_names!r}")

    @property
    def num_labels(self) -> int:
        """Number of classes; labels are the integers ``0 .. num_labels - 1``."""
        return len(self.label_names)

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks (two text columns, encoded as segments A and B)."""
        return len(self.text_columns) == 2

    @property
    def columns(self) -> tuple[str, ...]:
        """All columns of the task's files, in file order (text columns, then the label)."""
        return (*self.text_columns, self.label_column)

    def to_dict(self) -> dict:
        """A JSON-ready description (for run manifests)."""
        return {
            "name": self.name,
            "text_columns": list(self.text_columns),
            "label_column": self.label_column,
            "label_names": list(self.label_names),
            "num_labels": self.num_labels,
            "description": self.description,
            "metric": self.metric,
        }


#: The built-in tasks by name. Both were written for this project (see README.md in this folder).
BUILTIN_TASKS: dict[str, BuiltinTaskInfo] = {
    "reviews": BuiltinTaskInfo(
        name="reviews",
        text_columns=("sentence",),
        label_column="label",
        label_names=("negative", "positive"),
        description=(
            "Single-sentence sentiment of short reviews of products, restaurants, hotels, films, books, apps and "
            "services; 1 if the reviewer's overall verdict is positive, 0 if negative. About a third of the "
            "examples are hard: negation, mixed praise and complaint, expectations overturned."
        ),
    ),
    "entail": BuiltinTaskInfo(
        name="entail",
        text_columns=("premise", "hypothesis"),
        label_column="label",
        label_names=("not_entailment", "entailment"),
        description=(
            "Sentence-pair entailment: 1 if the hypothesis follows from the premise, 0 if it contradicts it or "
            "does not follow. Mixes restatements with hard cases: negation, quantifiers, numbers, swapped roles "
            "and high word overlap without entailment."
        ),
    ),
}


def _read_text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _check_task(name: str, split: str) -> BuiltinTaskInfo:
    if name not in BUILTIN_TASKS:
        raise ValueError(f"unknown built-in task {name!r}; choose one of: {', '.join(sorted(BUILTIN_TASKS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for task {name!r}; choose one of: {', '.join(SPLITS)}")
    return BUILTIN_TASKS[name]


def task_file(name: str, split: str) -> Traversable:
    """The packaged TSV file of one split of a built-in task (header row, tab-separated, UTF-8)."""
    _check_task(name, split)
    return resources.files(__name__).joinpath(TASKS_DIR).joinpath(name).joinpath(f"{split}.tsv")


def sample_sentences() -> list[str]:
    """The built-in single sentences for attention-map extraction, in file order."""
    return [line for line in _read_text(SENTENCES_FILE).splitlines() if line.strip()]


def sample_pairs() -> list[tuple[str, str]]:
    """The built-in sentence pairs ``(sentence_a, sentence_b)`` for attention-map extraction, in file order."""
    pairs = []
    for lineno, line in enumerate(_read_text(PAIRS_FILE).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{PAIRS_FILE}:{lineno}: expected 2 tab-separated fields, found {len(fields)}")
        pairs.append((fields[0], fields[1]))
    return pairs


@lru_cache(maxsize=None)
def _load_rows(name: str, split: str) -> tuple[tuple[str, ...], ...]:
    info = BUILTIN_TASKS[name]
    where = f"{TASKS_DIR}/{name}/{split}.tsv"
    lines = task_file(name, split).read_text(encoding="utf-8").splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header != info.columns:
        raise ValueError(f"{where}: header {header!r} does not match the task's columns {info.columns!r}")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = tuple(line.split("\t"))
        if len(fields) != len(header):
            raise ValueError(f"{where}:{lineno}: expected {len(header)} tab-separated fields, found {len(fields)}")
        rows.append(fields)
    return tuple(rows)


def load_builtin_task(name: str, split: str) -> list[dict]:
    """The examples of one split of a built-in task, in file order.

    Each example is a dict keyed by the task's column names (``BUILTIN_TASKS[name].columns``): the text
    column(s) as ``str`` and the label column as ``int``. A fresh list of fresh dicts is returned on every call,
    so callers may modify them. Raises ``ValueError`` naming the valid choices for an unknown task or split.
    """
    info = _check_task(name, split)
    examples = []
    for fields in _load_rows(name, split):
        example: dict = dict(zip(info.text_columns, fields[:-1]))
        label = int(fields[-1])
        if not 0 <= label < info.num_labels:
            raise ValueError(f"task {name!r} split {split!r}: label {label} outside 0..{info.num_labels - 1}")
        example[info.label_column] = label
        examples.append(example)
    return examples


__all__ = [
    "BUILTIN_TASKS",
    "BuiltinTaskInfo",
    "PAIRS_FILE",
    "SENTENCES_FILE",
    "SPLITS",
    "TASKS_DIR",
    "load_builtin_task",
    "sample_pairs",
    "sample_sentences",
    "task_file",
]
