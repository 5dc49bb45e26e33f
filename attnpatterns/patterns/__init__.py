"""The attention-pattern classifier: label maps as vertical, diagonal, vertical+diagonal, block or heterogeneous.

Modules, one concept each (label names live in :mod:`attnpatterns.annotation.labels`): :mod:`.io` (labelled sets in
the corpus / ``.npy`` + labels.txt / ``.npy`` + TSV formats), :mod:`.preprocess` (any-size map -> fixed inputs),
:mod:`.model` (the CNN), :mod:`.classifier` (network + kind + preprocessing), :mod:`.checkpoint` (safetensors +
JSON, shipped defaults), :mod:`.train` (grouped stratified CV, early stopping), :mod:`.evaluate` (scikit-learn
metrics, confusion matrix) and :mod:`.classify` (label an extraction run, per-head summaries).

Typical use::

    from attnpatterns.extraction import open_run
    from attnpatterns.patterns import classify_run, load_classifier

    table = classify_run(open_run("runs/extract"), {k: load_classifier(kind=k) for k in ("raw", "normed")})
    table.save("runs/classify")
"""

from __future__ import annotations

from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP, LabelError, LabelMap
from attnpatterns.patterns.checkpoint import (
    REBUILD_COMMAND,
    CheckpointError,
    NoDefaultCheckpointError,
    load_checkpoint,
    load_default_checkpoint,
    save_checkpoint,
)
from attnpatterns.patterns.classifier import KindMismatchError, PatternClassifier
from attnpatterns.patterns.classify import ClassificationTable, classify_maps, classify_run, head_summary
from attnpatterns.patterns.evaluate import EvaluationReport, evaluate_classifier
from attnpatterns.patterns.io import DataError, LabeledSet, load_labeled
from attnpatterns.patterns.preprocess import MapError, PreprocessConfig
from attnpatterns.patterns.train import TrainConfig, TrainingResult, train_classifier


def load_classifier(path=None, kind: str | None = None, device="cpu") -> PatternClassifier:
    """A checkpoint from ``path``, or the shipped default for ``kind`` when ``path`` is None."""
    if path is None:
        if kind is None:
            raise ValueError("pass a checkpoint path or the kind ('raw' or 'normed') of the default to load")
        return load_default_checkpoint(kind, device=device)
    return load_checkpoint(path, kind=kind, device=device)


__all__ = [
    "DEFAULT_LABEL_MAP",
    "REBUILD_COMMAND",
    "CheckpointError",
    "ClassificationTable",
    "DataError",
    "EvaluationReport",
    "KindMismatchError",
    "LabelError",
    "LabelMap",
    "LabeledSet",
    "MapError",
    "NoDefaultCheckpointError",
    "PatternClassifier",
    "PreprocessConfig",
    "TrainConfig",
    "TrainingResult",
    "classify_maps",
    "classify_run",
    "evaluate_classifier",
    "head_summary",
    "load_checkpoint",
    "load_classifier",
    "load_default_checkpoint",
    "load_labeled",
    "save_checkpoint",
    "train_classifier",
]
