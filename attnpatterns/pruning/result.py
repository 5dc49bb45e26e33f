"""The result of a pruning run: the kept subnetwork, the scores, and the log of every step.

``pruning_log.json`` is a JSON object::

    method, metric, threshold, full_score, target (= threshold x full_score), final_score,
    final: {heads_left, heads_total, mlps_left, mlps_total | weights_left, weights_total, sparsity},
    config: the settings of the run,
    steps: [{step, phase, score, passed, heads_left, mlps_left, pruned_heads [[layer, head], ...],
             pruned_mlps [layer, ...] | sparsity, seconds}, ...]

Step 0 is the full model (phase ``full``). A step that fails the threshold is logged too (``passed: false``); the
saved masks are those of the last step that passed.

:meth:`PruningResult.from_log` reads a log tolerantly (for reports): a bare list of steps too, and the spellings
other pruning code uses for the same fields (``metric_name``; steps under ``log`` or ``history``; a step's score as
``dev_score``, ``eval_score``, ... or an object of several metrics; ``n_heads_left``, ``remaining_heads``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.constants import PRUNING_LOG_FILE
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.runfolder import write_json

#: The importance scores of a structured pruning run (heads and MLPs), saved beside the log.
IMPORTANCE_FILE = "importance.npz"

# The spellings from_log accepts for one field, the one log() writes first.
_METRIC_KEYS = ("metric", "metric_name")
_STEPS_KEYS = ("steps", "log", "history")
SCORE_KEYS = ("score", "dev_score", "eval_score", "metric_value", "value")
_HEADS_KEYS = ("heads_left", "n_heads_left", "heads_remaining", "remaining_heads")
_MLPS_KEYS = ("mlps_left", "n_mlps_left", "mlps_remaining", "remaining_mlps")
_PHASE_KEYS = ("phase", "stage", "kind")


class PruningLogError(ValueError):
    """A pruning log without a list of step objects. ``result`` holds what the log's header did say."""

    def __init__(self, message: str, result: PruningResult):
        super().__init__(message)
        self.result = result


@dataclass
class PruningStep:
    """One step of a pruning log, as :meth:`PruningResult.step_records` reads it (None: the log does not say)."""

    step: int
    score: float | None = None
    heads_left: int | None = None
    mlps_left: int | None = None
    phase: str | None = None
    passed: bool | None = None  # False: the step fell below the threshold and its masks were not kept

    @classmethod
    def from_dict(cls, raw: Mapping, index: int, metric: str | None = None) -> PruningStep:
        """Read step number ``index`` of a log; a score that is an object of several metrics gives ``metric``'s
        (else its first number)."""
        score = _first(raw, SCORE_KEYS)
        if isinstance(score, Mapping):
            score = score.get(metric) if metric in score else next(
                (v for v in score.values() if isinstance(v, (int, float))), None
            )
        return cls(
            step=_int_or(raw.get("step"), index),
            score=_float_or_none(score),
            heads_left=_count(_first(raw, _HEADS_KEYS)),
            mlps_left=_count(_first(raw, _MLPS_KEYS)),
            phase=_str_or_none(_first(raw, _PHASE_KEYS)),
            passed=raw.get("passed") if isinstance(raw.get("passed"), bool) else None,
        )


@dataclass
class PruningResult:
    """A pruning run's result; read back from a log alone (:meth:`from_log`), fields the log lacks are None."""

    method: str | None
    metric: str | None
    threshold: float | None
    full_score: float | None
    final_score: float | None
    subnetwork: Subnetwork
    steps: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    head_importance: np.ndarray | None = None  # importance under the final masks (structured pruning)
    mlp_importance: np.ndarray | None = None

    @property
    def head_mask(self) -> np.ndarray | None:
        return self.subnetwork.head_mask

    @property
    def mlp_mask(self) -> np.ndarray | None:
        return self.subnetwork.mlp_mask

    @property
    def target(self) -> float | None:
        """The score a step had to reach to be kept: threshold x full score."""
        return None if self.threshold is None or self.full_score is None else self.threshold * self.full_score

    def step_records(self) -> list[PruningStep]:
        """The steps as :class:`PruningStep` records, whichever spelling the log used."""
        return [PruningStep.from_dict(raw, i, self.metric) for i, raw in enumerate(self.steps)]

    def log(self) -> dict:
        return {
            "method": self.method,
            "metric": self.metric,
            "threshold": self.threshold,
            "full_score": self.full_score,
            "target": self.target,
            "final_score": self.final_score,
            "final": self.subnetwork.summary(),
            "config": self.config,
            "steps": self.steps,
        }

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.subnetwork.save(folder)
        if self.head_importance is not None:
            np.savez(folder / IMPORTANCE_FILE, head=self.head_importance, mlp=self.mlp_importance)
        write_json(folder / PRUNING_LOG_FILE, self.log())

    @classmethod
    def load(cls, folder: Path | str) -> PruningResult:
        folder = Path(folder)
        log_path = folder / PRUNING_LOG_FILE
        if not log_path.is_file():
            raise ValueError(f"{folder} is not a pruning run (no {PRUNING_LOG_FILE}); run `attnpatterns prune` first.")
        log = json.loads(log_path.read_text(encoding="utf-8"))
        head = mlp = None
        if (folder / IMPORTANCE_FILE).is_file():
            with np.load(folder / IMPORTANCE_FILE) as data:
                head, mlp = data["head"], data["mlp"]
        return cls(
            method=log["method"],
            metric=log["metric"],
            threshold=log["threshold"],
            full_score=log["full_score"],
            final_score=log["final_score"],
            subnetwork=Subnetwork.load(folder),
            steps=log["steps"],
            config=log.get("config", {}),
            head_importance=head,
            mlp_importance=mlp,
        )

    @classmethod
    def from_log(cls, data) -> PruningResult:
        """Read the content of a pruning log tolerantly (see the module docstring): the subnetwork is empty (the
        masks are files of their own) and ``steps`` are the log's step objects as written.

        Raise :class:`PruningLogError` when there is no list of step objects.
        """
        head = data if isinstance(data, Mapping) else {}
        full_score = _float_or_none(head.get("full_score"))
        threshold = _float_or_none(head.get("threshold"))
        target = _float_or_none(head.get("target"))
        if threshold is None and target is not None and full_score:
            threshold = target / full_score
        result = cls(
            method=_str_or_none(head.get("method")),
            metric=_str_or_none(_first(head, _METRIC_KEYS)),
            threshold=threshold,
            full_score=full_score,
            final_score=_float_or_none(head.get("final_score")),
            subnetwork=Subnetwork(),
            config=dict(head["config"]) if isinstance(head.get("config"), Mapping) else {},
        )
        steps = next((head[k] for k in _STEPS_KEYS if isinstance(head.get(k), list)), None) if head is data else data
        if not isinstance(steps, list):
            raise PruningLogError("expected a list of steps (or an object with a 'steps' list)", result)
        for i, raw in enumerate(steps):
            if not isinstance(raw, Mapping):
                raise PruningLogError(f"step {i} is not an object", result)
        result.steps = list(steps)
        return result


def _first(mapping: Mapping, keys: Iterable[str]):
    return next((mapping[k] for k in keys if k in mapping and mapping[k] is not None), None)


def _float_or_none(value) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _count(value) -> int | None:
    if isinstance(value, (list, tuple)):  # e.g. a list of kept heads
        return len(value)
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _int_or(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)
