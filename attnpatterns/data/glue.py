"""GLUE tasks through ``datasets``: from the hub when online, or offline from a local folder in the classic layout.

The classic layout is what the original GLUE download script wrote, e.g. ``glue_data/SST-2/dev.tsv`` or
``glue_data/MNLI/dev_matched.tsv``; pass its parent folder as ``data_dir``. Each task's spec says where its text and
label columns are in both forms, so the rest of attnpatterns sees the same :class:`TextExample` records either way.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

from attnpatterns.data.records import InputError, TextExample


@dataclass(frozen=True)
class GlueTask:
    name: str  # hub config name
    folder: str  # classic folder name
    hub_text: tuple[str, ...]
    num_labels: int  # 1 = regression
    metric: str  # metric that drives pruning by default (as in the paper)
    classic_text: tuple[str | int, ...]  # column names, or indices for header-less files
    classic_label: str | int
    classic_header: bool = True
    label_names: tuple[str, ...] = ()
    splits: dict = field(default_factory=dict)  # split -> classic file stem

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


_NLI = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask("cola", "CoLA", ("sentence",), 2, "mcc", (3,), 1, classic_header=False),
        GlueTask("sst2", "SST-2", ("sentence",), 2, "accuracy", ("sentence",), "label"),
        GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), 2, "accuracy", ("#1 String", "#2 String"), "Quality"),
        GlueTask("qqp", "QQP", ("question1", "question2"), 2, "accuracy", ("question1", "question2"), "is_duplicate"),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), 1, "corr", ("sentence1", "sentence2"), "score"),
        GlueTask(
            "mnli", "MNLI", ("premise", "hypothesis"), 3, "accuracy", ("sentence1", "sentence2"), "gold_label",
            label_names=("entailment", "neutral", "contradiction"),
            splits={"validation": "dev_matched", "validation_matched": "dev_matched",
                    "validation_mismatched": "dev_mismatched"},
        ),
        GlueTask("qnli", "QNLI", ("question", "sentence"), 2, "accuracy", ("question", "sentence"), "label",
                 label_names=_NLI),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), 2, "accuracy", ("sentence1", "sentence2"), "label",
                 label_names=_NLI),
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), 2, "accuracy", ("sentence1", "sentence2"), "label"),
    ]
}
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def get_glue_task(name: str) -> GlueTask:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in GLUE_TASKS:
        raise InputError(f"unknown GLUE task {name!r}; choose one of {', '.join(GLUE_TASKS)}.")
    return GLUE_TASKS[key]


def _classic_file(task: GlueTask, data_dir: Path, split: str) -> Path:
    stem = task.splits.get(split, {"validation": "dev", "dev": "dev", "train": "train", "test": "test"}.get(split))
    if stem is None:
        raise InputError(f"unknown split {split!r} for {task.name}; use train, validation (dev) or test.")
    for base in (data_dir / task.folder, data_dir):
        candidate = base / f"{stem}.tsv"
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no {stem}.tsv for GLUE task {task.name} under {data_dir}; expected the classic layout "
        f"{data_dir}/{task.folder}/{stem}.tsv (as written by the GLUE download script)."
    )


def _read_classic(task: GlueTask, path: Path, split: str) -> list[TextExample]:
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise InputError(f"{path} is empty.")
    header = rows[0] if task.classic_header else None
    body = rows[1:] if task.classic_header else rows

    def index(col):
        if isinstance(col, int):
            return col
        if col not in header:
            raise InputError(f"{path} has no column {col!r} (columns: {', '.join(header)}); is it a {task.name} file?")
        return header.index(col)

    text_idx = [index(c) for c in task.classic_text]
    has_label = split != "test"
    label_idx = index(task.classic_label) if has_label else None
    out = []
    for i, row in enumerate(body):
        if len(row) <= max(text_idx + ([label_idx] if label_idx is not None else [])):
            continue  # a few classic files have malformed lines; GLUE's own loader skips them too
        label = _parse_label(task, row[label_idx]) if label_idx is not None else None
        texts = [row[j] for j in text_idx]
        out.append(TextExample(str(i), texts[0], texts[1] if len(texts) > 1 else None, label))
    return out


def _parse_label(task: GlueTask, value: str):
    if task.is_regression:
        return float(value)
    if task.label_names:
        if value not in task.label_names:
            raise InputError(f"label {value!r} is not one of {task.label_names} for {task.name}.")
        return task.label_names.index(value)
    return int(value)


def load_glue(name: str, split: str = "validation", data_dir: Path | str | None = None) -> list[TextExample]:
    """Load a GLUE task split: from ``data_dir`` (classic layout) when given, else from the hub via ``datasets``."""
    task = get_glue_task(name)
    if data_dir is not None:
        data_dir = Path(data_dir)
        return _read_classic(task, _classic_file(task, data_dir, split), split)
    try:
        from datasets import load_dataset

        hub_split = "validation_matched" if (task.name == "mnli" and split == "validation") else split
        ds = load_dataset("nyu-mll/glue", task.name, split=hub_split)
    except Exception as err:  # datasets raises several types when offline
        raise InputError(
            f"could not load GLUE {task.name}/{split} from the hub ({err.__class__.__name__}). Offline, pass "
            f"--glue-dir with a folder in the classic GLUE layout (e.g. glue_data/{task.folder}/dev.tsv)."
        ) from err
    out = []
    for i, row in enumerate(ds):
        texts = [row[c] for c in task.hub_text]
        label = row.get("label")
        label = None if label is None or label == -1 else label
        out.append(TextExample(str(row.get("idx", i)), texts[0], texts[1] if len(texts) > 1 else None, label))
    return out
