"""GLUE metrics (scikit-learn / scipy) and which of them a task can use.

Classification tasks report accuracy and Matthews correlation (MCC); binary tasks also F1 of the positive class;
regression tasks (STS-B, or user files with ``regression=True``) report Pearson and Spearman correlation and
``corr``, their mean (the score that drives STS-B pruning in the paper's code). Degenerate inputs -- constant
predictions, as a heavily pruned model can produce -- score 0 rather than NaN, so that the pruning stop rule still
compares two numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class MetricError(ValueError):
    """A metric was asked for that the task cannot use (e.g. MCC on a regression task)."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "classification" or "regression"
    binary_only: bool
    fn: Callable[[np.ndarray, np.ndarray], float]
    description: str


def _accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(pred == gold))


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0.0))


def _mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


def _correlation(which: str):
    def fn(pred: np.ndarray, gold: np.ndarray) -> float:
        from scipy import stats

        if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
            return 0.0  # correlation with a constant is undefined; treat as no correlation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = stats.pearsonr(pred, gold)[0] if which == "pearson" else stats.spearmanr(pred, gold)[0]
        return 0.0 if not np.isfinite(value) else float(value)

    return fn


def _corr(pred: np.ndarray, gold: np.ndarray) -> float:
    return (_correlation("pearson")(pred, gold) + _correlation("spearman")(pred, gold)) / 2


#: Every metric by name; option choices in the CLI come from here.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", "classification", False, _accuracy, "fraction of correct labels"),
        Metric("f1", "classification", True, _f1, "F1 of the positive class (binary tasks)"),
        Metric("mcc", "classification", False, _mcc, "Matthews correlation coefficient"),
        Metric("pearson", "regression", False, _correlation("pearson"), "Pearson correlation"),
        Metric("spearman", "regression", False, _correlation("spearman"), "Spearman correlation"),
        Metric("corr", "regression", False, _corr, "mean of Pearson and Spearman correlation"),
    ]
}


def available_metrics(num_labels: int) -> list[str]:
    """Metrics a task with ``num_labels`` outputs (1 = regression) can use."""
    kind = "regression" if num_labels == 1 else "classification"
    return [m.name for m in METRICS.values() if m.kind == kind and (not m.binary_only or num_labels == 2)]


def check_metric(name: str, num_labels: int, task_name: str = "this task") -> str:
    """Return ``name`` if the task can use it, else raise :class:`MetricError` naming the ones it can."""
    usable = available_metrics(num_labels)
    if name not in METRICS:
        raise MetricError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}.")
    if name not in usable:
        kind = "a regression task" if num_labels == 1 else f"a {num_labels}-class task"
        raise MetricError(
            f"metric {name!r} cannot be used for {task_name} ({kind}); choose one of {', '.join(usable)}."
        )
    return name


def predictions(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Class ids (argmax) for classification, the single output for regression."""
    logits = np.asarray(logits)
    if num_labels == 1:
        return logits.reshape(-1).astype(np.float64)
    return logits.argmax(-1)


def compute_metrics(
    logits: np.ndarray, labels: np.ndarray, num_labels: int, only: str | None = None
) -> dict[str, float]:
    """Every metric the task can use (or ``only`` that one), from model outputs ``logits`` (N, num_labels)."""
    pred = predictions(logits, num_labels)
    gold = np.asarray(labels, dtype=np.float64 if num_labels == 1 else np.int64)
    if len(gold) == 0:
        raise MetricError("cannot score an empty set of examples; the dev set needs at least one example.")
    names = [check_metric(only, num_labels)] if only else available_metrics(num_labels)
    return {name: METRICS[name].fn(pred, gold) for name in names}
