"""One labelled-task abstraction over the built-in tasks, GLUE and the user's own files.

Fine-tuning and pruning need the same four things whatever the source: train and dev examples with labels, the
number of outputs (1 = regression), the metric that drives pruning, and a description precise enough to load the
task again (it goes into run manifests, so ``attnpatterns prune`` can reuse the task of a fine-tuning run).
Every way a task can be unusable -- no labels, labels the train split never saw, an empty dev set, a metric the
task cannot use -- is a :class:`~attnpatterns.data.records.InputError` or
:class:`~attnpatterns.tasks.metrics.MetricError` that says what to fix.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.tasks.metrics import available_metrics, check_metric

SOURCES = ("builtin", "glue", "files")


@dataclass(frozen=True)
class Task:
    """A labelled task: examples carry integer class ids (or floats for regression) in ``label``."""

    name: str
    train: tuple[TextExample, ...]
    dev: tuple[TextExample, ...]
    num_labels: int  # 1 = regression
    metric: str  # the metric that drives pruning
    label_names: tuple[str, ...] = ()
    origin: str = "files"  # one of SOURCES
    source: dict = field(default_factory=dict)  # keyword arguments of load_task that rebuild this task

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return bool(self.dev) and self.dev[0].is_pair

    @property
    def metrics(self) -> list[str]:
        return available_metrics(self.num_labels)

    def with_metric(self, metric: str | None) -> Task:
        """The same task scored by ``metric`` (checked), or unchanged when ``metric`` is None."""
        if metric is None:
            return self
        return replace(self, metric=check_metric(metric, self.num_labels, self.name))

    @cached_property
    def _digest(self) -> str:
        digest = hashlib.sha256(json.dumps([self.name, self.num_labels]).encode())
        for split in (self.train, self.dev):
            digest.update(b"|split|")
            for e in split:  # one example at a time: GLUE's larger train sets would make one huge string
                digest.update(json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        return digest.hexdigest()[:16]

    def fingerprint(self) -> str:
        """A hash of everything that decides results: the examples, their labels and the number of outputs."""
        return self._digest

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "num_labels": self.num_labels,
            "label_names": list(self.label_names),
            "metric": self.metric,
            "n_train": len(self.train),
            "n_dev": len(self.dev),
            "fingerprint": self.fingerprint(),
        }


def task_choices() -> list[str]:
    """Names accepted by ``load_task(name)``: the built-in tasks, then the GLUE tasks."""
    from attnpatterns.data.glue import GLUE_TASKS

    return [*_builtin_names(), *GLUE_TASKS]


def _builtin_names() -> list[str]:
    try:
        from attnpatterns.data.builtin import BUILTIN_TASKS
    except ImportError:  # the built-in tasks are optional while they are being written
        return []
    return list(BUILTIN_TASKS)


def load_task(
    name: str | None = None,
    *,
    glue_dir: Path | str | None = None,
    train_file: Path | str | None = None,
    dev_file: Path | str | None = None,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    regression: bool = False,
    metric: str | None = None,
) -> Task:
    """Load a task by name (built-in or GLUE) or from the user's train and dev files.

    Files are CSV/TSV/JSONL with a header (see :func:`attnpatterns.data.files.read_table`); labels may be any
    strings (class names, sorted for a stable order) or, with ``regression=True``, numbers.
    """
    if train_file is not None or dev_file is not None:
        if train_file is None or dev_file is None:
            raise InputError("a task from files needs both --train-file and --dev-file.")
        task = _from_files(name, Path(train_file), Path(dev_file), text_columns, label_column, regression)
    elif name is None:
        raise InputError(f"name a task ({', '.join(task_choices())}) or give --train-file and --dev-file.")
    elif name.lower() in _builtin_names():
        task = _from_builtin(name.lower())
    else:
        _check_glue_name(name)
        task = _from_glue(name, glue_dir)
    return task.with_metric(metric)


def _check_glue_name(name: str) -> None:
    """Refuse a name that is neither built-in nor GLUE with a message that lists both kinds of task."""
    from attnpatterns.data.glue import GLUE_TASKS, get_glue_task

    try:
        get_glue_task(name)
    except InputError:
        builtin = ", ".join(_builtin_names()) or "none installed"
        raise InputError(
            f"unknown task {name!r}; choose a built-in task ({builtin}), a GLUE task ({', '.join(GLUE_TASKS)}), "
            "or give your own data with --train-file and --dev-file."
        ) from None


def _from_builtin(name: str) -> Task:
    from attnpatterns.data.builtin import BUILTIN_TASKS, load_builtin_task

    info = BUILTIN_TASKS[name]

    def examples(split: str) -> tuple[TextExample, ...]:
        rows = load_builtin_task(name, split)
        texts = info.text_columns
        return tuple(
            TextExample(str(i), row[texts[0]], row[texts[1]] if len(texts) > 1 else None, row[info.label_column])
            for i, row in enumerate(rows)
        )

    return _checked(
        Task(name, examples("train"), examples("dev"), info.num_labels, info.metric, tuple(info.label_names),
             "builtin", {"name": name}),
        origin=f"built-in task {name!r}",
    )


def _from_glue(name: str, glue_dir: Path | str | None) -> Task:
    from attnpatterns.data.glue import get_glue_task, load_glue

    spec = get_glue_task(name)
    train = load_glue(spec.name, "train", glue_dir)
    dev = load_glue(spec.name, "validation", glue_dir)
    num_labels = spec.num_labels
    source = {"name": spec.name, "glue_dir": None if glue_dir is None else str(Path(glue_dir).resolve())}
    return _checked(
        Task(spec.name, tuple(train), tuple(dev), num_labels, spec.metric, tuple(spec.label_names), "glue", source),
        origin=f"GLUE task {spec.name}",
    )


def _from_files(
    name: str | None,
    train_file: Path,
    dev_file: Path,
    text_columns: Sequence[str] | None,
    label_column: str,
    regression: bool,
) -> Task:
    from attnpatterns.data.files import read_table

    train = read_table(train_file, text_columns, label_column)
    dev = read_table(dev_file, text_columns, label_column)
    for path, examples in ((train_file, train), (dev_file, dev)):
        missing = [e.example_id for e in examples if e.label is None or str(e.label).strip() == ""]
        if missing:
            raise InputError(
                f"{path}: {len(missing)} row(s) have no label in column {label_column!r} (first: row "
                f"{int(missing[0]) + 1}); every training and dev example needs one."
            )
    source = {
        "name": name or train_file.stem,
        "train_file": str(train_file.resolve()),
        "dev_file": str(dev_file.resolve()),
        "text_columns": list(text_columns or []),
        "label_column": label_column,
        "regression": regression,
    }
    if regression:
        train, dev = _as_floats(train, train_file), _as_floats(dev, dev_file)
        return _checked(Task(source["name"], tuple(train), tuple(dev), 1, "corr", (), "files", source), str(train_file))
    names = _label_names([str(e.label).strip() for e in train])
    if len(names) < 2:
        raise InputError(
            f"{train_file} has only one label ({names[0]!r}); a classification task needs at least two classes."
        )
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(e.label).strip() for e in dev} - set(index))
    if unknown:
        raise InputError(
            f"{dev_file} has label(s) {', '.join(map(repr, unknown))} that never occur in {train_file} "
            f"(labels there: {', '.join(map(repr, names))}); fix the typo or add training examples of that class."
        )
    relabel = [
        [replace(e, label=index[str(e.label).strip()]) for e in examples] for examples in (train, dev)
    ]
    return _checked(
        Task(source["name"], tuple(relabel[0]), tuple(relabel[1]), len(names), "accuracy", tuple(names), "files",
             source),
        str(train_file),
    )


def _label_names(labels: list[str]) -> list[str]:
    distinct = set(labels)
    try:  # numeric labels keep their numeric order ("0" < "1" < "10")
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def _as_floats(examples: list[TextExample], path: Path) -> list[TextExample]:
    out = []
    for e in examples:
        try:
            out.append(replace(e, label=float(e.label)))
        except (TypeError, ValueError):
            raise InputError(f"{path}: label {e.label!r} of example {e.example_id} is not a number (regression).")
    return out


def _checked(task: Task, origin: str) -> Task:
    """Refuse tasks that cannot be trained or scored, saying which split is at fault."""
    for split, examples in (("train", task.train), ("dev", task.dev)):
        if not examples:
            raise InputError(f"the {split} split of {origin} is empty; it needs at least one labelled example.")
        unlabelled = [e.example_id for e in examples if e.label is None]
        if unlabelled:
            raise InputError(
                f"the {split} split of {origin} has {len(unlabelled)} unlabelled example(s) (first id "
                f"{unlabelled[0]!r}); fine-tuning and pruning need labels (GLUE test splits have none)."
            )
        if not task.is_regression:
            bad = sorted({e.label for e in examples if not _is_class_id(e.label, task.num_labels)}, key=str)
            if bad:
                raise InputError(
                    f"the {split} split of {origin} has label(s) {bad} outside 0..{task.num_labels - 1}; "
                    "labels must be class ids of the task."
                )
        if len({e.is_pair for e in examples}) > 1:
            raise InputError(f"the {split} split of {origin} mixes single texts and sentence pairs; use one kind.")
    check_metric(task.metric, task.num_labels, task.name)
    return task


def _is_class_id(label, num_labels: int) -> bool:
    return isinstance(label, numbers.Integral) and 0 <= int(label) < num_labels


def limit_examples(examples: Sequence[TextExample], n: int | None) -> tuple[TextExample, ...]:
    """The first ``n`` examples (all when ``n`` is None); ``n`` must be positive."""
    if n is None:
        return tuple(examples)
    if n < 1:
        raise InputError(f"the number of examples must be positive, not {n}.")
    return tuple(examples[:n])
