"""Training the pattern classifier: grouped + stratified k-fold cross-validation, then one final fit.

Splits are made by scikit-learn's ``StratifiedGroupKFold``: stratified by label and grouped by source text
(:attr:`LabeledSet.groups`), so the maps of one sentence never sit on both sides of a split. Every fit (each CV
fold, and the final model) holds out a further grouped, stratified validation split (``val_fraction`` of its
training part) for early stopping: training stops after ``patience`` epochs without a lower validation loss (but
not before ``min_epochs``, so that a noisy start on a small validation split does not end training) and the weights of the best epoch are kept. The loss is cross-entropy weighted by ``n / (k * count)`` per class
(scikit-learn's "balanced" weights) so that rare types count as much as common ones. Everything random (splits,
initialisation, batch order) follows ``seed``; the global torch RNG state is left as it was.

Maps are featurised once (:mod:`attnpatterns.patterns.preprocess`) and the features are shared by all folds.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.class_weight import compute_class_weight

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.patterns.checkpoint import RUN_CHECKPOINT_DIR, save_checkpoint
from attnpatterns.patterns.classifier import PatternClassifier
from attnpatterns.patterns.evaluate import EvaluationReport
from attnpatterns.patterns.io import DataError, LabeledSet
from attnpatterns.patterns.model import ModelConfig
from attnpatterns.patterns.preprocess import Features, PreprocessConfig, preprocess_maps

TRAINING_JSON = "training.json"
OOF_CSV = "cv_predictions.csv"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and validation settings (saved in the checkpoint)."""

    n_folds: int = 5
    max_epochs: int = 60
    min_epochs: int = 10
    patience: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    class_weighting: bool = True
    allow_empty_classes: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1 or self.min_epochs < 0:
            raise ValueError("max_epochs, patience and batch_size must be positive, min_epochs non-negative")

    def to_dict(self) -> dict:
        return asdict(self)


def check_trainable(data: LabeledSet, n_splits: int, allow_empty_classes: bool = False) -> None:
    """Refuse sets that cannot be trained or cross-validated, saying why and what to do."""
    if len(data) == 0:
        raise DataError("the training set is empty")
    counts = data.class_counts()
    empty = [t for t, c in counts.items() if c == 0]
    if empty and not allow_empty_classes:
        raise DataError(
            f"no training maps of type(s) {', '.join(empty)} in {data.source or 'the data'} "
            f"(counts: {counts}); the classifier would never predict them. Label some, or pass "
            "--allow-empty-classes to train without them"
        )
    if len(set(counts) - set(empty)) < 2:
        raise DataError(f"need maps of at least two types to train, got counts {counts}")
    for label, count in counts.items():
        if 0 < count < n_splits:
            raise DataError(
                f"type {label!r} has {count} map(s), fewer than the {n_splits} splits; "
                "use fewer folds (--folds) or label more maps of that type"
            )
    for label in (t for t, c in counts.items() if c):
        n_groups = len({g for g, lab in zip(data.groups, data.labels) if lab == label})
        if n_groups < 2:
            raise DataError(f"all maps of type {label!r} come from one source text; a grouped split is impossible")


def _grouped_splits(y: np.ndarray, groups: list[str], n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(set(groups))
    if n_groups < n_splits:
        raise DataError(f"only {n_groups} distinct source texts (groups); cannot make {n_splits} grouped splits")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def _train_val_split(y: np.ndarray, groups: list[str], val_fraction: float, seed: int):
    # as many folds as 1/val_fraction, but no more than the rarest type has maps (so it can be stratified)
    n_splits = min(round(1.0 / val_fraction), int(np.bincount(y)[np.unique(y)].min()), len(set(groups)))
    if n_splits < 2:
        raise DataError("need at least two source texts to hold out a validation split")
    train, val = _grouped_splits(y, groups, n_splits, seed)[0]
    return train, val


@dataclass
class FitHistory:
    """Per-epoch training and validation loss of one fit, and the epoch whose weights were kept."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _class_weights(y: np.ndarray, enabled: bool) -> torch.Tensor:
    weights = np.ones(len(PATTERN_TYPES), dtype=np.float32)
    if enabled:
        present = np.unique(y)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.from_numpy(weights)


def _fit_network(
    classifier: PatternClassifier,
    train: Features,
    y_train: np.ndarray,
    val: Features,
    y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
) -> FitHistory:
    """Train ``classifier.network`` in place with early stopping on ``val``; keeps the best epoch's weights."""
    device = classifier.device
    network = classifier.network
    weights = _class_weights(y_train, config.class_weighting).to(device)
    train, val = train.to(device), val.to(device)
    yt, yv = torch.from_numpy(y_train).to(device), torch.from_numpy(y_val).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    generator = torch.Generator().manual_seed(seed)
    history = FitHistory()
    best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
    start = time.perf_counter()
    for epoch in range(config.max_epochs):
        network.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        total = 0.0
        for begin in range(0, len(order), config.batch_size):
            batch = order[begin : begin + config.batch_size]
            if batch.numel() < 2:  # batch norm needs two samples
                continue
            part = train[batch]
            loss = F.cross_entropy(network(part.images, part.vectors), yt[batch], weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * batch.numel()
        scheduler.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(network(val.images, val.vectors), yv, weight=weights))
        history.train_loss.append(total / len(train))
        history.val_loss.append(val_loss)
        if val_loss < best_loss - 1e-4:
            best_loss, best_state, stale = val_loss, copy.deepcopy(network.state_dict()), 0
            history.best_epoch = epoch + 1
        else:
            stale += 1
            if stale >= config.patience and epoch + 1 >= config.min_epochs:
                break
    network.load_state_dict(best_state)
    network.eval()
    history.seconds = time.perf_counter() - start
    return history


def fit_features(
    feats: Features,
    y: np.ndarray,
    groups: list[str],
    kind: str,
    preprocess: PreprocessConfig = PreprocessConfig(),
    model: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    seed: int | None = None,
) -> tuple[PatternClassifier, FitHistory]:
    """One fit on featurised maps: grouped validation split, then training with early stopping."""
    seed = config.seed if seed is None else seed
    train_idx, val_idx = _train_val_split(y, groups, config.val_fraction, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = PatternClassifier.new(kind, preprocess, model).to(device)
        history = _fit_network(
            classifier, feats[train_idx], y[train_idx], feats[val_idx], y[val_idx], config, seed
        )
    return classifier, history


@dataclass
class CrossValidation:
    """Out-of-fold results of k-fold cross-validation."""

    report: EvaluationReport  #: scores of the pooled out-of-fold predictions
    probabilities: np.ndarray  #: (N, 5) out-of-fold class probabilities
    folds: np.ndarray  #: (N,) fold in which each map was a test map
    histories: list[FitHistory]
    names: list[str]

    @property
    def fold_macro_f1(self) -> list[float]:
        return list(self.report.extra.get("fold_macro_f1", []))

    def predictions_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"name": self.names, "fold": self.folds})
        frame["label"] = [PATTERN_TYPES[i] for i in self.report.y_true]
        frame["predicted"] = [PATTERN_TYPES[i] for i in self.report.y_pred]
        for i, t in enumerate(PATTERN_TYPES):
            frame[f"p_{t}"] = self.probabilities[:, i]
        return frame


def cross_validate_features(
    feats: Features,
    data: LabeledSet,
    preprocess: PreprocessConfig = PreprocessConfig(),
    model: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
) -> CrossValidation:
    y = data.y
    probabilities = np.zeros((len(data), len(PATTERN_TYPES)), dtype=np.float32)
    folds = np.full(len(data), -1, dtype=np.int64)
    histories, fold_scores = [], []
    for fold, (train_idx, test_idx) in enumerate(_grouped_splits(y, data.groups, config.n_folds, config.seed)):
        groups = [data.groups[i] for i in train_idx]
        classifier, history = fit_features(
            feats[train_idx], y[train_idx], groups, data.kind, preprocess, model, config, device,
            seed=config.seed + 1000 * (fold + 1),
        )
        probabilities[test_idx] = classifier.predict_features(feats[test_idx])
        folds[test_idx] = fold
        histories.append(history)
        fold_scores.append(EvaluationReport(y[test_idx], probabilities[test_idx].argmax(1)).macro_f1)
    title = f"{config.n_folds}-fold grouped cross-validation, {data.kind} maps ({len(data)} maps)"
    report = EvaluationReport(y, probabilities.argmax(1), PATTERN_TYPES, title, {"fold_macro_f1": fold_scores})
    return CrossValidation(report, probabilities, folds, histories, list(data.names))


@dataclass
class TrainingResult:
    """What ``attnpatterns train`` produces: the final classifier and (unless skipped) its cross-validation."""

    classifier: PatternClassifier
    history: FitHistory
    cv: CrossValidation | None
    data_summary: dict
    config: TrainConfig
    seconds: float

    def to_dict(self) -> dict:
        return {
            "kind": self.classifier.kind,
            "data": self.data_summary,
            "train_config": self.config.to_dict(),
            "preprocess": self.classifier.preprocess.to_dict(),
            "model": self.classifier.network.config.to_dict(),
            "final_fit": self.history.to_dict(),
            "cv_macro_f1": None if self.cv is None else self.cv.report.macro_f1,
            "cv_fold_macro_f1": None if self.cv is None else self.cv.fold_macro_f1,
            "cv_fits": None if self.cv is None else [h.to_dict() for h in self.cv.histories],
            "seconds": self.seconds,
        }

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write the CV report (JSON, text, confusion PNG), out-of-fold predictions, training.json, checkpoint/."""
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        if self.cv is not None:
            paths.update(self.cv.report.save(folder))
            paths["predictions"] = folder / OOF_CSV
            self.cv.predictions_frame().to_csv(paths["predictions"], index=False)
        paths["training"] = folder / TRAINING_JSON
        paths["training"].write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        paths["checkpoint"] = save_checkpoint(self.classifier, folder / RUN_CHECKPOINT_DIR)
        return paths


def train_classifier(
    data: LabeledSet,
    kind: str | None = None,
    preprocess: PreprocessConfig = PreprocessConfig(),
    model: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    cross_validate: bool = True,
) -> TrainingResult:
    """Cross-validate (unless ``cross_validate=False``), then fit the final classifier on all of ``data``.

    ``kind`` defaults to ``data.kind``; one of them must be set, and they must agree.
    """
    kind = kind or data.kind
    if kind is None:
        raise DataError("the kind of the maps (raw or normed) is unknown; pass kind=")
    if data.kind is not None and data.kind != kind:
        raise DataError(f"the data holds {data.kind} maps but a {kind} classifier was asked for")
    data = LabeledSet(data.names, data.arrays, data.labels, data.groups, kind, data.source, data.meta)
    check_trainable(data, config.n_folds if cross_validate else 2, config.allow_empty_classes)
    start = time.perf_counter()
    feats = preprocess_maps(data.arrays, preprocess, names=data.names)
    cv = cross_validate_features(feats, data, preprocess, model, config, device) if cross_validate else None
    classifier, history = fit_features(feats, data.y, data.groups, kind, preprocess, model, config, device)
    summary = data.summary()
    classifier.metadata.update(
        {
            "training": {
                "data": summary,
                "config": config.to_dict(),
                "best_epoch": history.best_epoch,
                "cv_macro_f1": None if cv is None else cv.report.macro_f1,
                "cv_fold_macro_f1": None if cv is None else cv.fold_macro_f1,
                "cv_per_class": None if cv is None else cv.report.per_class,
            }
        }
    )
    return TrainingResult(classifier, history, cv, summary, config, time.perf_counter() - start)

