"""Magnitude pruning (m-pruning): global L1 unstructured pruning of the encoder, as in Prasanna et al. (2020).

The reference is ``mask_global`` in Prasanna et al.'s code (sai-prasanna/bert-experiments,
``src/find_global_weight_mask.py``, with ``parameters_to_prune`` of ``src/run_glue.py``): torch's
``prune.global_unstructured(..., L1Unstructured, amount=0.1)``, repeated. Each step removes ``amount`` (10%) of the
parameters still kept, round(0.1 x kept), those of smallest |w| across the whole pool at once, then scores the model on
the dev set; it stops at the first step whose score falls below ``threshold`` (0.9) x the full model's, and keeps the
masks of the last step that passed.

The pool (``MagnitudeConfig.pool``):

``prasanna2020`` (the default)
    their ``parameters_to_prune``: in every layer the weights *and biases* of Q, K, V, the attention output
    projection and the first FFN matrix, and the second FFN matrix's weight (its bias is commented out there).
    Embeddings, LayerNorms, pooler and classifier are never pruned.
``weights``
    the six weight matrices of every layer, no bias (what this module pruned before the reference was followed).

The number of steps: the code's loop runs at most ``total_steps = 10`` prune-and-score steps, but it saves the mask
copied *before* the last step it ran, so when all ten pass it keeps nine (sparsity 1 - 0.9^9 = 61.3%), and when step k
fails, k - 1, as here. ``max_steps = 9`` (the default) therefore gives exactly its masks, with one evaluation fewer
when all pass; ``--max-steps 10`` keeps a passing tenth step. Like structured pruning, it hands the state after every
step (:class:`MagnitudeState`) to a checkpoint and can resume from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from attnpatterns.masking.subnetwork import Subnetwork, weights_zeroed
from attnpatterns.models.adapter import get_adapter
from attnpatterns.pruning.checkpoint import save_then_report
from attnpatterns.pruning.result import PruningResult
from attnpatterns.pruning.structured import check_full_score, check_threshold, meets_target
from attnpatterns.tasks.evaluation import predict, prepare_dev
from attnpatterns.tasks.metrics import compute_metrics
from attnpatterns.tasks.task import Task


#: What magnitude pruning may prune (module docstring): name -> one-line summary, for option help.
POOLS = {
    "prasanna2020": "Q, K, V, attention output, FFN-in weights and biases, FFN-out weight (Prasanna et al.'s code)",
    "weights": "the six weight matrices of every layer, no bias",
}
DEFAULT_POOL = "prasanna2020"


@dataclass(frozen=True)
class MagnitudeConfig:
    amount: float = 0.1  # share of the remaining parameters removed per step
    max_steps: int = 9  # the reference keeps at most nine steps (module docstring)
    threshold: float = 0.9
    max_length: int = 128
    batch_size: int = 64  # speed only
    max_dev_examples: int | None = None
    pool: str = DEFAULT_POOL

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}.")
        if not 0 < self.amount < 1:
            raise ValueError(f"amount must be in (0, 1), not {self.amount}.")
        if self.max_steps < 1 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("max_steps and batch_size must be positive, max_length at least 8.")
        if self.max_dev_examples is not None and self.max_dev_examples < 1:
            raise ValueError("max_dev_examples must be positive.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MagnitudeConfig:
        return cls(**{"pool": "weights", **data})  # a config saved without a pool is from before pools: weights


#: Each pool's parameters in one layer, as the names of ``adapter.mask_targets()`` after ``layerN.``, in pool order:
#: ``weights`` in the adapter's order, ``prasanna2020`` in the order of Prasanna et al.'s ``parameters_to_prune``.
_POOL_PARTS = {
    "weights": ("query", "key", "value", "attn_out", "ffn_in", "ffn_out"),
    "prasanna2020": ("key", "key.bias", "query", "query.bias", "value", "value.bias", "attn_out", "attn_out.bias",
                     "ffn_in", "ffn_in.bias", "ffn_out"),
}


def encoder_weights(model: nn.Module, pool: str = DEFAULT_POOL) -> dict[str, torch.Tensor]:
    """The prunable parameters of ``pool``, by mask name (``layer0.key``, ``layer0.key.bias``, ...), in pool order
    (a linear without a bias has none to prune)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {pool!r}.")
    adapter = get_adapter(model)
    targets = adapter.mask_targets()
    names = [f"layer{layer}.{part}" for layer in range(adapter.num_layers) for part in _POOL_PARTS[pool]]
    return {name: getattr(*targets[name]) for name in names if name in targets}


def global_magnitude_step(
    weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """New masks with ``round(amount x kept)`` more weights removed: the smallest |w| among those still kept."""
    names = list(weights)
    kept = sum(int(masks[n].sum()) for n in names)
    k = int(round(amount * kept))
    flat_masks = torch.cat([masks[n].reshape(-1).to(weights[n].device) for n in names])
    if k == 0:
        return {n: masks[n].clone() for n in names}
    scores = torch.cat([weights[n].detach().abs().reshape(-1).float() for n in names])
    scores[~flat_masks] = float("inf")  # already pruned: never chosen again
    drop = torch.topk(scores, k, largest=False).indices
    flat_masks = flat_masks.clone()
    flat_masks[drop] = False
    out, offset = {}, 0
    for n in names:
        size = weights[n].numel()
        out[n] = flat_masks[offset : offset + size].view_as(weights[n]).cpu()
        offset += size
    return out


@dataclass(frozen=True)
class MagnitudeState:
    """Where m-pruning stands after a finished step: the accepted weight masks, their score and the log so far."""

    masks: dict[str, torch.Tensor]  # name -> bool (CPU), the masks of the last step that passed
    score: float
    full_score: float
    steps: tuple[dict, ...]

    def finished(self, max_steps: int) -> bool:
        return not self.steps[-1]["passed"] or len(self.steps) > max_steps

    def to_checkpoint(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)`` with the masks bit-packed (bert-base: 10 MiB instead of 85)."""
        meta = {"score": self.score, "full_score": self.full_score, "steps": list(self.steps),
                "shapes": {name: list(mask.shape) for name, mask in self.masks.items()}}
        arrays = {f"mask.{name}": np.packbits(mask.numpy().reshape(-1)) for name, mask in self.masks.items()}
        return meta, arrays

    @classmethod
    def from_checkpoint(cls, meta: dict, arrays: dict[str, np.ndarray]) -> MagnitudeState:
        masks = {}
        for name, shape in meta["shapes"].items():
            bits = np.unpackbits(arrays[f"mask.{name}"], count=int(np.prod(shape))).astype(bool)
            masks[name] = torch.from_numpy(bits.reshape(shape))
        return cls(masks, float(meta["score"]), float(meta["full_score"]), tuple(meta["steps"]))


def magnitude_prune(
    model: nn.Module,
    tokenizer,
    task: Task,
    config: MagnitudeConfig | None = None,
    progress: Callable[[dict], None] | None = None,
    resume: MagnitudeState | None = None,
    checkpoint: Callable[[MagnitudeState], None] | None = None,
) -> PruningResult:
    """m-prune a classifier fine-tuned on ``task``; the result holds boolean weight masks.

    After every finished step ``checkpoint`` receives the new :class:`MagnitudeState`, then ``progress`` the step;
    ``resume`` (such a state from an interrupted run with the same inputs) continues without redoing its steps.
    """
    config = config or MagnitudeConfig()
    _, features, labels = prepare_dev(model, tokenizer, task, config.max_length, config.max_dev_examples)
    pad = tokenizer.pad_token_id or 0
    weights = encoder_weights(model, config.pool)

    def score(masks: dict[str, torch.Tensor] | None) -> float:
        with weights_zeroed(model, masks or {}):
            logits, _ = predict(model, features, config.batch_size, pad)
        return compute_metrics(logits, labels, task.num_labels, task.metric)[task.metric]

    if resume is None:
        start = time.perf_counter()
        full = score(None)
        check_full_score(full, task.metric, config.threshold)
        masks = {n: torch.ones_like(w, dtype=torch.bool, device="cpu") for n, w in weights.items()}
        state = MagnitudeState(masks, float(full), float(full), (_step(0, "full", full, True, 0.0,
                                                                        time.perf_counter() - start),))
        save_then_report(state, checkpoint, progress)
    else:
        state = resume
        if {n: tuple(m.shape) for n, m in state.masks.items()} != {n: tuple(w.shape) for n, w in weights.items()}:
            raise ValueError("the saved magnitude-pruning state does not fit this model's encoder weights.")
    target = config.threshold * state.full_score
    total = sum(m.numel() for m in state.masks.values())
    while not state.finished(config.max_steps):
        start = time.perf_counter()
        candidate = global_magnitude_step(weights, state.masks, config.amount)
        value = score(candidate)
        passed = meets_target(value, target)
        sparsity = 1.0 - sum(int(m.sum()) for m in candidate.values()) / total
        step = _step(len(state.steps), "magnitude", value, passed, sparsity, time.perf_counter() - start)
        kept, kept_score = (candidate, float(value)) if passed else (state.masks, state.score)
        state = MagnitudeState(kept, kept_score, state.full_score, (*state.steps, step))
        save_then_report(state, checkpoint, progress)
    return PruningResult(
        method="magnitude",
        metric=task.metric,
        threshold=config.threshold,
        full_score=state.full_score,
        final_score=state.score,
        subnetwork=Subnetwork(weight_masks=state.masks),
        steps=list(state.steps),
        config=config.to_dict(),
    )


def _step(i: int, phase: str, score: float, passed: bool, sparsity: float, seconds: float) -> dict:
    return {"step": i, "phase": phase, "score": float(score), "passed": passed, "sparsity": round(sparsity, 6),
            "seconds": round(seconds, 3)}
