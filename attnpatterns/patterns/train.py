"""Training the pattern classifier: grouped + stratified k-fold cross-validation, then one final fit.

Splits are made by scikit-learn's ``StratifiedGroupKFold``: stratified by label and grouped by source text
(:attr:`LabeledSet.groups`), so the maps of one sentence never sit on both sides of a split. Every fit (each CV
fold, and the final model) holds out a further grouped, stratified validation split (``val_fraction`` of its
training part) for early stopping: training stops after ``patience`` epochs without a lower validation loss (but
not before ``min_epochs``, so that a noisy start on a small validation split does not end training) and the
weights of the best epoch are kept. The loss is cross-entropy with class weights against imbalance: by default
the square root of scikit-learn's "balanced" weights ``n / (k * count)`` (capped at :data:`MAX_CLASS_WEIGHT`), which
on the project's corpus gave a higher cross-validated macro-F1 than the full balanced weights (that over-predict
the rare types) or none (that under-predict them). Everything random (splits, initialisation, batch order,
augmentation) follows ``seed``; the global torch RNG state is left as it was.

Augmentation: every training map is also seen as ``augment`` copies resampled to a random size between 0.6 and
1.6 times its own (bilinear, antialiased; drawn once, from ``seed``), so that the classifier learns that the
size of a map does not decide its type. Validation and test maps are never augmented. Cross-validation also
measures, on each fold's *test* maps, how often a label survives the crop/pad/resize treatments of
:mod:`attnpatterns.patterns.robustness` (reported as ``robustness`` in the CV report).

Maps are featurised once (:mod:`attnpatterns.patterns.preprocess`) and the features are shared by all folds.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
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
from attnpatterns.patterns.forest import fit_trees
from attnpatterns.patterns.io import DataError, LabeledSet
from attnpatterns.patterns.model import ModelConfig
from attnpatterns.patterns.preprocess import (
    Features,
    PreprocessConfig,
    default_preprocess,
    prepare_map,
    prepared_segments,
    preprocess_maps,
)
from attnpatterns.patterns.robustness import agreement_masks, random_resize, resize_segments, summarise_agreement

#: Run type in the manifest of an `attnpatterns train` folder.
TRAINING_RUN = "pattern-training"
TRAINING_JSON = "training.json"
#: Class weighting of the loss: none, the square root of the balanced weights, or the balanced weights.
CLASS_WEIGHTINGS = ("none", "sqrt", "balanced")
#: Upper bound of a class weight (a type with fewer than 1/10 of the average count per type is not weighted more).
MAX_CLASS_WEIGHT = 10.0
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
    label_smoothing: float = 0.0
    monitor: str = "loss"  #: early stopping on the validation "loss" or "macro_f1"
    val_fraction: float = 0.15
    class_weighting: str = "sqrt"  #: one of CLASS_WEIGHTINGS
    augment: int = 1  #: resized copies of every training map (see module docstring)
    robustness: bool = True  #: measure out-of-fold label agreement under crop/pad/resize in cross-validation
    allow_empty_classes: bool = False
    seed: int = 0
    #: cross-validation runs this many times, each with other fold splits and fit seeds (``seed + 7 * r``); the
    #: detailed report is the first run's, and the report adds every run's macro-F1 and their mean
    cv_repeats: int = 1

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("max_epochs, patience and batch_size must be positive")
        if self.monitor not in ("loss", "macro_f1"):
            raise ValueError(f"monitor must be 'loss' or 'macro_f1', got {self.monitor!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(
                f"class_weighting must be one of {', '.join(CLASS_WEIGHTINGS)}, got {self.class_weighting!r}"
            )
        if self.min_epochs < 0 or self.augment < 0:
            raise ValueError("min_epochs and augment must be non-negative")
        if self.cv_repeats < 1:
            raise ValueError(f"cv_repeats must be at least 1, got {self.cv_repeats}")

    def to_dict(self) -> dict:
        return asdict(self)


class RareClassWarning(UserWarning):
    """A pattern type comes from too few source texts for every fold to hold one of its maps."""


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
    texts = {label: len({g for g, lab in zip(data.groups, data.labels) if lab == label}) for label in counts}
    rare = {label: n for label, n in texts.items() if 0 < n < n_splits}
    if rare:
        warnings.warn(
            f"type(s) {rare} come from fewer source texts than the {n_splits} splits (maps of one text stay "
            "together): some test folds have none of them and their scores are unreliable; label more maps of "
            "those types",
            RareClassWarning,
            stacklevel=3,
        )


def _grouped_splits(y: np.ndarray, groups: list[str], n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(set(groups))
    if n_groups < n_splits:
        raise DataError(f"only {n_groups} distinct source texts (groups); cannot make {n_splits} grouped splits")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # rare types are reported once, by check_trainable
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(y)), y, groups))


def _train_val_split(y: np.ndarray, groups: list[str], val_fraction: float, seed: int):
    n_splits = min(round(1.0 / val_fraction), len(set(groups)))
    if n_splits < 2:
        raise DataError("need at least two source texts to hold out a validation split")
    train, val = _grouped_splits(y, groups, n_splits, seed)[0]
    return train, val


@dataclass
class FitHistory:
    """Per-epoch training and validation loss of one fit, and the epoch whose weights were kept."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _class_weights(y: np.ndarray, weighting: str) -> torch.Tensor:
    weights = np.ones(len(PATTERN_TYPES), dtype=np.float32)
    if weighting != "none":
        present = np.unique(y)
        # capped, so that a type with a handful of maps does not dominate the loss
        balanced = np.minimum(compute_class_weight("balanced", classes=present, y=y), MAX_CLASS_WEIGHT)
        weights[present] = np.sqrt(balanced) if weighting == "sqrt" else balanced
    return torch.from_numpy(weights)


def _fit_network(
    network: torch.nn.Module,
    train: Features,
    y_train: np.ndarray,
    val: Features,
    y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
) -> FitHistory:
    """Train ``network`` in place with early stopping on ``val``; keeps the best epoch's weights."""
    device = next(network.parameters()).device
    weights = _class_weights(y_train, config.class_weighting).to(device)
    train, val = train.to(device), val.to(device)
    yt, yv = torch.from_numpy(y_train).to(device), torch.from_numpy(y_val).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    generator = torch.Generator().manual_seed(seed)
    history = FitHistory()
    best_loss, best_f1, best_state, stale = float("inf"), -1.0, copy.deepcopy(network.state_dict()), 0
    start = time.perf_counter()
    for epoch in range(config.max_epochs):
        network.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        total = 0.0
        for begin in range(0, len(order), config.batch_size):
            batch = order[begin : begin + config.batch_size]
            part = train[batch]
            logits = network(part.images, part.vectors)
            loss = F.cross_entropy(logits, yt[batch], weight=weights, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * batch.numel()
        scheduler.step()
        network.eval()
        with torch.no_grad():
            val_logits = network(val.images, val.vectors)
            val_loss = float(F.cross_entropy(val_logits, yv, weight=weights))
        val_f1 = EvaluationReport(y_val, val_logits.argmax(1).cpu().numpy()).macro_f1
        history.train_loss.append(total / len(train))
        history.val_loss.append(val_loss)
        history.val_macro_f1.append(val_f1)
        lower_loss = val_loss < best_loss - 1e-4
        if config.monitor == "macro_f1":  # ties in macro-F1 are broken by the loss
            improved = val_f1 > best_f1 or (val_f1 == best_f1 and lower_loss)
        else:
            improved = lower_loss
        if improved:
            best_loss, best_f1, best_state, stale = val_loss, val_f1, copy.deepcopy(network.state_dict()), 0
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
    augmented: Sequence[Features] = (),
) -> tuple[PatternClassifier, list[FitHistory]]:
    """One fit on featurised maps; every ensemble member gets its own seed and grouped validation split.

    ``augmented`` holds extra views of the same maps (aligned with ``feats``); their training part joins the
    training set, their validation part is left out. Returns the classifier and one history per member.
    """
    seed = config.seed if seed is None else seed
    histories = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = PatternClassifier.new(kind, preprocess, model).to(device)
        for index, member in enumerate(classifier.network.members):
            member_seed = seed + 7919 * index
            train_idx, val_idx = _train_val_split(y, groups, config.val_fraction, member_seed)
            train = Features.cat([feats[train_idx], *(a[train_idx] for a in augmented)])
            y_train = np.tile(y[train_idx], 1 + len(augmented))
            histories.append(
                _fit_network(member, train, y_train, feats[val_idx], y[val_idx], config, member_seed)
            )
    classifier.network.eval()
    if model.forest_weight > 0:  # the forest needs no validation split: it sees every training map
        views = augmented if model.forest_augmented else ()
        vectors = torch.cat([feats.vectors, *(a.vectors for a in views)]).cpu().numpy()
        classifier.forest = fit_trees(model.forest_method, vectors, np.tile(y, 1 + len(views)), model, seed)
    return classifier, histories


def augmented_views(data: LabeledSet, preprocess: PreprocessConfig, copies: int, seed: int) -> list[Features]:
    """``copies`` randomly resized views of every map, featurised (aligned with ``data``); segment ids, where the data
    has them, are resampled with their maps (:func:`~attnpatterns.patterns.robustness.resize_segments`)."""
    rng = np.random.default_rng(seed)
    prepared = [prepare_map(a, n, preprocess) for a, n in zip(data.arrays, data.names)]
    segments = prepared_segments(data.arrays, data.segments, data.names, [a.shape[0] for a in prepared])
    views = []
    for _ in range(copies):
        resized = [random_resize(a, rng) for a in prepared]
        ids = [None if s is None else resize_segments(s, r.shape[0]) for s, r in zip(segments, resized)]
        views.append(preprocess_maps(resized, preprocess, segments=ids))
    return views


@dataclass
class CrossValidation:
    """Out-of-fold results of k-fold cross-validation."""

    report: EvaluationReport  #: scores of the pooled out-of-fold predictions
    probabilities: np.ndarray  #: (N, 5) out-of-fold class probabilities
    folds: np.ndarray  #: (N,) fold in which each map was a test map
    histories: list[list[FitHistory]]  #: per fold, one history per ensemble member
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


#: Step between the seeds of repeated cross-validation runs.
REPEAT_SEED_STEP = 7


def cross_validate_features(
    feats: Features,
    data: LabeledSet,
    preprocess: PreprocessConfig = PreprocessConfig(),
    model: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    augmented: Sequence[Features] = (),
) -> CrossValidation:
    """k-fold cross-validation, repeated ``config.cv_repeats`` times with other splits; the report and the
    out-of-fold probabilities are the first run's, ``extra["repeat_macro_f1"]`` holds every run's macro-F1."""
    y = data.y
    seeds = [config.seed + REPEAT_SEED_STEP * r for r in range(config.cv_repeats)]
    runs = [_cross_validate_once(feats, data, preprocess, model, config, device, augmented, seed,
                                 robustness=config.robustness and seed == seeds[0]) for seed in seeds]
    probabilities, folds, histories, fold_scores, member_probabilities, agreement = runs[0]
    title = f"{config.n_folds}-fold grouped cross-validation, {data.kind} maps ({len(data)} maps)"
    extra: dict = {"fold_macro_f1": fold_scores}
    if len(seeds) > 1:
        extra["repeat_macro_f1"] = [EvaluationReport(y, run[0].argmax(1)).macro_f1 for run in runs]
        extra["repeat_seeds"] = seeds
    if len(member_probabilities) > 1:  # how each part scores alone, next to the mix
        extra["member_macro_f1"] = {
            name: EvaluationReport(y, probs.argmax(1)).macro_f1 for name, probs in member_probabilities.items()
        }
        extra["forest_weight"] = model.forest_weight
    if agreement:
        extra["robustness"] = summarise_agreement({k: np.concatenate(v) for k, v in agreement.items()})
    report = EvaluationReport(y, probabilities.argmax(1), PATTERN_TYPES, title, extra)
    return CrossValidation(report, probabilities, folds, histories, list(data.names))


def _cross_validate_once(feats, data, preprocess, model, config, device, augmented, seed: int, robustness: bool):
    y = data.y
    probabilities = np.zeros((len(data), len(PATTERN_TYPES)), dtype=np.float32)
    folds = np.full(len(data), -1, dtype=np.int64)
    histories, fold_scores = [], []
    member_probabilities: dict[str, np.ndarray] = {}
    agreement: dict[str, list[np.ndarray]] = {}
    for fold, (train_idx, test_idx) in enumerate(_grouped_splits(y, data.groups, config.n_folds, seed)):
        groups = [data.groups[i] for i in train_idx]
        classifier, history = fit_features(
            feats[train_idx], y[train_idx], groups, data.kind, preprocess, model, config, device,
            seed=seed + 1000 * (fold + 1), augmented=[a[train_idx] for a in augmented],
        )
        members = classifier.predict_members(feats[test_idx])
        for name, probs in members.items():
            member_probabilities.setdefault(name, np.zeros_like(probabilities))[test_idx] = probs
        probabilities[test_idx] = classifier.mix(members)  # the parts' predictions, not a second pass
        folds[test_idx] = fold
        histories.append(history)
        fold_scores.append(EvaluationReport(y[test_idx], probabilities[test_idx].argmax(1)).macro_f1)
        if robustness:
            ids = None if data.segments is None else [data.segments[i] for i in test_idx]
            masks = agreement_masks(classifier, [data.arrays[i] for i in test_idx], segments=ids)
            for name, mask in masks.items():
                agreement.setdefault(name, []).append(mask)
    return probabilities, folds, histories, fold_scores, member_probabilities, agreement


@dataclass
class TrainingResult:
    """What ``attnpatterns train`` produces: the final classifier and (unless skipped) its cross-validation."""

    classifier: PatternClassifier
    history: list[FitHistory]  #: one per ensemble member of the final fit
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
            "final_fit": [h.to_dict() for h in self.history],
            "cv_macro_f1": None if self.cv is None else self.cv.report.macro_f1,
            "cv_repeat_macro_f1": None if self.cv is None else self.cv.report.extra.get("repeat_macro_f1"),
            "cv_fold_macro_f1": None if self.cv is None else self.cv.fold_macro_f1,
            "cv_fits": None if self.cv is None else [[h.to_dict() for h in fold] for fold in self.cv.histories],
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
    preprocess: PreprocessConfig | None = None,
    model: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    cross_validate: bool = True,
) -> TrainingResult:
    """Cross-validate (unless ``cross_validate=False``), then fit the final classifier on all of ``data``.

    ``kind`` defaults to ``data.kind``; one of them must be set, and they must agree. ``preprocess`` defaults to
    :func:`~attnpatterns.patterns.preprocess.default_preprocess` of the kind; its segment statistics are left out
    when ``data`` has no segment ids (loose ``.npy`` maps), so that the classifier does not ask for them.
    """
    kind = kind or data.kind
    if kind is None:
        raise DataError("the kind of the maps (raw or normed) is unknown; pass kind=")
    if data.kind is not None and data.kind != kind:
        raise DataError(f"the data holds {data.kind} maps but a {kind} classifier was asked for")
    data = replace(data, kind=kind)  # every other field (segment ids included) as given
    preprocess = preprocess or default_preprocess(kind)
    if preprocess.segment_statistics and data.segments is None:
        # loose maps carry no segment ids: the statistics would be the same for every map, and a checkpoint trained
        # with them would ask at inference for ids that such data never has
        preprocess = replace(preprocess, segment_statistics=False)
    check_trainable(data, config.n_folds if cross_validate else 2, config.allow_empty_classes)
    start = time.perf_counter()
    feats = preprocess_maps(data.arrays, preprocess, names=data.names, segments=data.segments)
    augmented = augmented_views(data, preprocess, config.augment, config.seed)
    cv = cross_validate_features(feats, data, preprocess, model, config, device, augmented) if cross_validate else None
    classifier, history = fit_features(
        feats, data.y, data.groups, kind, preprocess, model, config, device, augmented=augmented
    )
    summary = data.summary()
    classifier.metadata.update(
        {
            "training": {
                "data": summary,
                "config": config.to_dict(),
                "best_epochs": [h.best_epoch for h in history],
                "cv_macro_f1": None if cv is None else cv.report.macro_f1,
                "cv_repeat_macro_f1": None if cv is None else cv.report.extra.get("repeat_macro_f1"),
                "cv_fold_macro_f1": None if cv is None else cv.fold_macro_f1,
                "cv_per_class": None if cv is None else cv.report.per_class,
                "cv_robustness": None if cv is None else cv.report.extra.get("robustness"),
            }
        }
    )
    return TrainingResult(classifier, history, cv, summary, config, time.perf_counter() - start)



def train_run(
    output: str | Path,
    kind: str,
    data: str | Path | None = None,
    format: str = "auto",
    label_map: str | Path | None = None,
    group_pattern: str | None = None,
    config: TrainConfig = TrainConfig(),
    model: ModelConfig = ModelConfig(),
    device: torch.device | str = "cpu",
    cross_validate: bool = True,
    overwrite: bool = False,
    install_default: bool = False,
    log: Callable[[str], None] = lambda message: None,
    preprocess: PreprocessConfig | None = None,
) -> tuple[TrainingResult, dict[str, Path]]:
    """What ``attnpatterns train`` does: a self-describing training run folder at ``output``.

    A folder that holds anything but a training run is refused before anything is read (and left untouched). Then
    the labelled maps are read (``data``: the project corpus by default; any format of
    :func:`attnpatterns.patterns.io.load_labeled`, with extra label names from ``label_map``), their content digest
    completes the run's fingerprint, and :func:`attnpatterns.runfolder.open_run_folder` clears the folder (another
    training run is replaced only with ``overwrite``; this very run, finished, is refused: nothing to do). The
    classifier is cross-validated and fitted (:func:`train_classifier`) with every RNG seeded by ``config.seed``,
    and the checkpoint, reports and manifest are written; ``install_default`` also makes it the shipped default of
    its kind (with its cross-validation report). ``log`` receives the data summary and the CV report. ``preprocess``
    (default: :func:`~attnpatterns.patterns.preprocess.default_preprocess` of ``kind``; e.g. another pooling grid) is
    saved in the checkpoint, so the classifier applies it at inference too.
    Returns the result and the paths written.
    """
    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP, read_label_map_file
    from attnpatterns.patterns.checkpoint import install_default_checkpoint
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.runfolder import RunExistsError, check_output_folder, fingerprint, open_run_folder
    from attnpatterns.runtime import seed_everything


    output = Path(output)
    preprocess = preprocess or default_preprocess(kind)
    check_output_folder(output, TRAINING_RUN, None, overwrite)  # a folder that is no training run: refused first
    mapping = read_label_map_file(label_map) if label_map else DEFAULT_LABEL_MAP
    dataset = load_labeled(data, format, kind, mapping, group_pattern)  # reads only: nothing written yet
    ident = {
        "kind": kind, "data": None if data is None else str(Path(data).resolve()), "format": format,
        "label_map": None if label_map is None else str(label_map), "group_pattern": group_pattern,
        "train": config.to_dict(), "model": model.to_dict(), "preprocess": preprocess.to_dict(),
        "skip_cv": not cross_validate, "maps": dataset.digest(),  # changed labels or maps: another run
    }
    folder = open_run_folder(output, TRAINING_RUN, fingerprint(ident), overwrite)
    if folder.state == "complete":
        raise RunExistsError(
            f"{output} already holds this training run, finished (the same maps, labels and settings; checkpoint "
            f"in {output / 'checkpoint'}); nothing was written. Pass --overwrite to train it again."
        )
    seed_everything(config.seed)
    log(f"{len(dataset)} {kind} maps from {dataset.source}: {dataset.class_counts()}")
    result = train_classifier(dataset, kind, preprocess=preprocess, model=model, config=config, device=device,
                              cross_validate=cross_validate)
    folder.start({"kind": kind, "seed": config.seed, "device": str(device), "train_config": config.to_dict(),
                  "model_config": model.to_dict(), "preprocess": result.classifier.preprocess.to_dict()})
    paths = result.save(output)
    summary = result.to_dict()
    folder.finish(data=result.data_summary, cv_macro_f1=summary["cv_macro_f1"],
                  cv_repeat_macro_f1=summary["cv_repeat_macro_f1"])
    if result.cv is not None:
        log(result.cv.report.to_text())
    if install_default:
        installed = install_default_checkpoint(paths["checkpoint"], report_folder=output if result.cv else None)
        log(f"installed as the default {kind} classifier: {installed}")
    return result, paths
