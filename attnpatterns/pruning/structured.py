"""Structured pruning (s-pruning) of heads and MLPs by importance, as in Prasanna et al. (2020).

The schedule, starting from the full model (every step masks the least important components still kept, by the
importance computed under the current masks, then scores the new masks on the dev set):

1. ``joint``: mask ``head_fraction`` of all heads (14 of BERT-base's 144, 7 of MiniLM's 72) and the least important
   MLP per step, while the dev score stays >= ``threshold`` x the full model's score;
2. ``heads``: then heads only, half as many per step (rounded down, so none below 20 heads: the phase is skipped);
3. ``mlps``: then MLPs only, one per step.

This is ``mask_heads_mlps`` of Prasanna et al.'s code (sai-prasanna/bert-experiments, ``src/find_head_mlp_masks.py``,
the ``--try_masking`` path): its step sizes (``num_to_mask = max(1, int(#heads x 0.1))``, ``num_to_mask // 2`` in
the heads phase, one MLP), its stop rule (score >= threshold x the full score, ``--masking_threshold 0.9``) and the
masks it saves (the last that passed).

A phase ends at its first failing step, and the next phase starts again from the last masks that passed; the saved
masks are the last that passed. As in the paper's code, importance is computed on the dev set and the same pass
gives the dev score (one forward + backward per step). ``importance_split``/``importance_examples`` compute
importance on other (or fewer) examples instead, with a separate forward pass for the score. One deliberate
difference from that code: after a failed step, the next phase ranks by the importance under the masks that passed,
not under the rejected ones. So a rejected step's importance is never used, and on a small dev set its backward
passes are skipped: the forward passes over the dev set come first, and the gradients are computed only if their
score passes (see :func:`attnpatterns.pruning.importance.gate_gradients`; a dev set whose kept graphs would pass
``GRAPH_BUDGET_BYTES`` backpropagates as it goes); the masks and scores are the same to the bit.

Each step ends in a :class:`ScheduleState` (accepted masks, their score and importance, the phase, the log), which
:func:`run_schedule` hands to a ``checkpoint`` callback and can resume from: the importance that ranks the next
step is saved with the masks, so a resumed run assesses no finished step again and ends exactly like an
uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from torch import nn

from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning.checkpoint import save_then_report
from attnpatterns.pruning.importance import ImportanceConfig, gate_gradients, normalize
from attnpatterns.pruning.result import PruningResult
from attnpatterns.tasks.batches import encode
from attnpatterns.tasks.evaluation import predict, prepare_dev
from attnpatterns.tasks.metrics import compute_metrics
from attnpatterns.tasks.task import Task, limit_examples

PHASES = ("joint", "heads", "mlps")
IMPORTANCE_SPLITS = ("dev", "train")


class PruningError(ValueError):
    """Pruning cannot start or continue meaningfully (e.g. the full model scores 0 or less)."""


def check_threshold(threshold: float) -> float:
    if not 0 < threshold <= 1:
        raise ValueError(
            f"threshold must be in (0, 1] (a fraction of the full model's dev score), not {threshold}; "
            "the paper used 0.9."
        )
    return float(threshold)


def check_full_score(score: float, metric: str, threshold: float) -> None:
    """Pruning compares every step with ``threshold`` x the full score, which needs a positive full score."""
    if not np.isfinite(score) or score <= 0:
        raise PruningError(
            f"the full model scores {score:.4g} ({metric}) on the dev set, so 'stay above {threshold} x the full "
            "score' means nothing; fine-tune the model on this task first, or choose another --metric."
        )


def meets_target(score: float, target: float) -> bool:
    """``score >= target``, where a score equal to the target up to rounding passes (171/216 vs 0.9 x 190/216)."""
    return bool(score >= target - 1e-9 * abs(target))


@dataclass(frozen=True)
class StructuredConfig:
    head_fraction: float = 0.1  # share of all heads masked per joint step (half of it in the heads phase)
    mlps_per_step: int = 1
    threshold: float = 0.9
    phases: tuple[str, ...] = PHASES
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    max_length: int = 128
    batch_size: int = 32  # speed only, except for the bertology and michel importance variants
    max_dev_examples: int | None = None  # first N dev examples (all when None)
    importance_split: str = "dev"
    importance_examples: int | None = None  # first N examples of importance_split (all when None)

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if not 0 < self.head_fraction < 1:
            raise ValueError(f"head_fraction must be in (0, 1), not {self.head_fraction}.")
        if self.mlps_per_step < 1 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("mlps_per_step and batch_size must be positive, max_length at least 8.")
        phases = tuple(self.phases)
        if not phases or any(p not in PHASES for p in phases) or len(set(phases)) != len(phases):
            raise ValueError(f"phases must be distinct names from {', '.join(PHASES)}, not {self.phases}.")
        object.__setattr__(self, "phases", phases)
        if self.importance_split not in IMPORTANCE_SPLITS:
            raise ValueError(f"importance_split must be one of {', '.join(IMPORTANCE_SPLITS)}.")
        for name in ("max_dev_examples", "importance_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive.")

    def heads_per_step(self, total_heads: int, phase: str) -> int:
        """``num_to_mask = max(1, int(#heads x masking_amount))`` of ``mask_heads_mlps`` (Prasanna et al.'s
        ``src/find_head_mlp_masks.py``) in the joint phase, ``num_to_mask // 2`` in the heads phase: 0 below 20
        heads at the default 10%, which ends that phase without a step, as the code's empty selection does."""
        k = max(1, int(total_heads * self.head_fraction))
        return {"joint": k, "heads": k // 2, "mlps": 0}[phase]

    def mlps_per_phase_step(self, phase: str) -> int:
        return 0 if phase == "heads" else self.mlps_per_step

    def to_dict(self) -> dict:
        out = asdict(self)
        out["phases"] = list(self.phases)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> StructuredConfig:
        data = dict(data)
        data["importance"] = ImportanceConfig.from_dict(data.get("importance", {}))
        data["phases"] = tuple(data.get("phases", PHASES))
        return cls(**data)


#: assess(head_mask, mlp_mask, target) -> (score, head_importance (L, H), mlp_importance (L,)). ``target`` is the
#: score a pruning step must reach (None for the full model); when the score misses it, the step is rejected and its
#: importance never used, so ``assess`` may return None for both importances instead of computing them.
Assess = Callable[[np.ndarray, np.ndarray, float | None], tuple[float, np.ndarray | None, np.ndarray | None]]


def _least_important(importance: np.ndarray, mask: np.ndarray, n: int) -> list[int]:
    """Flat indices of the ``n`` least important components still kept (fewer if fewer are left)."""
    kept = np.flatnonzero(mask.reshape(-1) == 1)
    order = kept[np.argsort(importance.reshape(-1)[kept], kind="stable")]
    return order[:n].tolist()


@dataclass(frozen=True)
class ScheduleState:
    """Where the schedule stands after a finished step: all it needs to continue exactly as if never stopped.

    ``phase`` indexes ``config.phases``: the phase the next step belongs to (``len(phases)`` once every phase has
    ended). The masks are the accepted ones (those of the last step that passed), with their dev ``score`` and the
    importance computed under them, which ranks the components for the next step.
    """

    phase: int
    head_mask: np.ndarray  # (L, H) float 0/1
    mlp_mask: np.ndarray  # (L,)
    head_importance: np.ndarray  # (L, H) under head_mask, mlp_mask
    mlp_importance: np.ndarray  # (L,)
    score: float
    full_score: float
    steps: tuple[dict, ...]

    def to_checkpoint(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)`` for :func:`attnpatterns.pruning.checkpoint.save_checkpoint`."""
        meta = {"phase": self.phase, "score": self.score, "full_score": self.full_score, "steps": list(self.steps)}
        arrays = {"head_mask": self.head_mask, "mlp_mask": self.mlp_mask, "head_importance": self.head_importance,
                  "mlp_importance": self.mlp_importance}
        return meta, arrays

    @classmethod
    def from_checkpoint(cls, meta: dict, arrays: dict[str, np.ndarray]) -> ScheduleState:
        return cls(
            phase=int(meta["phase"]),
            score=float(meta["score"]),
            full_score=float(meta["full_score"]),
            steps=tuple(meta["steps"]),
            **{name: np.asarray(arrays[name]) for name in
               ("head_mask", "mlp_mask", "head_importance", "mlp_importance")},
        )


def run_schedule(
    assess: Assess,
    num_layers: int,
    num_heads: int,
    config: StructuredConfig,
    metric: str = "score",
    progress: Callable[[dict], None] | None = None,
    resume: ScheduleState | None = None,
    checkpoint: Callable[[ScheduleState], None] | None = None,
) -> PruningResult:
    """The s-pruning schedule over any scoring function (the model-free core, tested on synthetic scores).

    After every finished step ``checkpoint`` receives the new :class:`ScheduleState`, then ``progress`` the step.
    ``resume`` (a state passed to ``checkpoint`` by an earlier, interrupted run with the same inputs) continues
    from there: the finished steps are not assessed again, and the result equals an uninterrupted run's.
    """
    if resume is None:
        head = np.ones((num_layers, num_heads), np.float32)
        mlp = np.ones(num_layers, np.float32)
        start = time.perf_counter()
        full_score, head_imp, mlp_imp = assess(head, mlp, None)
        check_full_score(full_score, metric, config.threshold)
        step = _step(0, "full", full_score, True, head, mlp, [], [], time.perf_counter() - start)
        state = ScheduleState(0, head, mlp, head_imp, mlp_imp, float(full_score), float(full_score), (step,))
        save_then_report(state, checkpoint, progress)
    else:
        state = resume
        if state.head_mask.shape != (num_layers, num_heads) or not 0 <= state.phase <= len(config.phases):
            raise ValueError(f"the saved pruning state (masks {state.head_mask.shape}, phase {state.phase}) does "
                             f"not fit {num_layers} layers x {num_heads} heads and phases {config.phases}.")
    target = config.threshold * state.full_score
    while state.phase < len(config.phases):
        phase = config.phases[state.phase]
        n_heads = config.heads_per_step(state.head_mask.size, phase)
        n_mlps = config.mlps_per_phase_step(phase)
        heads_out = _least_important(state.head_importance, state.head_mask, n_heads) if n_heads else []
        mlps_out = _least_important(state.mlp_importance, state.mlp_mask, n_mlps) if n_mlps else []
        if (n_heads and not heads_out) or (n_mlps and not mlps_out) or not (n_heads or n_mlps):
            # nothing of the kind this phase prunes is left, or its step prunes nothing (the heads phase below 20
            # heads): no step, as in the reference code (and the same is found again on resume)
            state = replace(state, phase=state.phase + 1)
            continue
        new_head, new_mlp = state.head_mask.copy(), state.mlp_mask.copy()
        new_head.reshape(-1)[heads_out] = 0
        new_mlp[mlps_out] = 0
        start = time.perf_counter()
        new_score, new_head_imp, new_mlp_imp = assess(new_head, new_mlp, target)
        passed = meets_target(new_score, target)
        if passed and (new_head_imp is None or new_mlp_imp is None):
            raise RuntimeError(f"assess returned no importance for step {len(state.steps)}, which passed")
        pruned = [[int(i) // num_heads, int(i) % num_heads] for i in heads_out]
        step = _step(len(state.steps), phase, new_score, passed, new_head, new_mlp, pruned, mlps_out,
                     time.perf_counter() - start)
        if passed:
            state = ScheduleState(state.phase, new_head, new_mlp, new_head_imp, new_mlp_imp, float(new_score),
                                  state.full_score, (*state.steps, step))
        else:  # the phase ends; the next starts again from the accepted masks
            state = replace(state, phase=state.phase + 1, steps=(*state.steps, step))
        save_then_report(state, checkpoint, progress)
    return PruningResult(
        method="structured",
        metric=metric,
        threshold=config.threshold,
        full_score=state.full_score,
        final_score=state.score,
        subnetwork=Subnetwork(state.head_mask, state.mlp_mask),
        steps=list(state.steps),
        config=config.to_dict(),
        head_importance=state.head_importance,
        mlp_importance=state.mlp_importance,
    )


def _step(i, phase, score, passed, head, mlp, pruned_heads, pruned_mlps, seconds) -> dict:
    return {
        "step": i,
        "phase": phase,
        "score": float(score),
        "passed": passed,
        "heads_left": int(head.sum()),
        "mlps_left": int(mlp.sum()),
        "pruned_heads": pruned_heads,
        "pruned_mlps": [int(m) for m in pruned_mlps],
        "seconds": round(seconds, 3),
    }


def structured_prune(
    model: nn.Module,
    tokenizer,
    task: Task,
    config: StructuredConfig | None = None,
    progress: Callable[[dict], None] | None = None,
    resume: ScheduleState | None = None,
    checkpoint: Callable[[ScheduleState], None] | None = None,
) -> PruningResult:
    """s-prune a classifier fine-tuned on ``task``; returns the masks, scores and step log.

    ``checkpoint`` and ``resume`` are those of :func:`run_schedule`: the state after every step, and an interrupted
    run's last state to continue from.
    """
    from attnpatterns.models.adapter import get_adapter

    config = config or StructuredConfig()
    dev, dev_features, labels = prepare_dev(model, tokenizer, task, config.max_length, config.max_dev_examples)
    adapter = get_adapter(model)
    regression = task.is_regression
    pad = tokenizer.pad_token_id or 0
    source: Sequence = dev if config.importance_split == "dev" else task.train
    imp_examples = limit_examples(source, config.importance_examples)
    combined = config.importance_split == "dev" and len(imp_examples) == len(dev)
    imp_features = dev_features if combined else encode(tokenizer, imp_examples, config.max_length, regression)

    def dev_score(logits: np.ndarray) -> float:
        return compute_metrics(logits, labels, task.num_labels, task.metric)[task.metric]

    def assess(head_mask: np.ndarray, mlp_mask: np.ndarray, target: float | None):
        sub = Subnetwork(head_mask, mlp_mask)
        if not combined:
            with sub.applied(model):
                logits, _ = predict(model, dev_features, config.batch_size, pad)
            score = dev_score(logits)
            if target is not None and not meets_target(score, target):
                return score, None, None  # rejected: its importance is never used
        # With importance on the dev set, one pass gives the score too; a rejected step may skip its backward.
        needed = None if target is None or not combined else (lambda lg: meets_target(dev_score(lg), target))
        head_raw, mlp_raw, n_tokens, logits, _ = gate_gradients(
            model, imp_features, task.num_labels, sub, config.batch_size, config.importance.variant, pad,
            needed=needed,
        )
        if combined:
            score = dev_score(logits)
        if head_raw is None:
            return score, None, None
        head_imp, mlp_imp = normalize(head_raw, mlp_raw, n_tokens, config.importance)
        return score, head_imp, mlp_imp

    return run_schedule(assess, adapter.num_layers, adapter.num_heads, config, task.metric, progress, resume,
                        checkpoint)
