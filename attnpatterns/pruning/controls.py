"""Controls for pruning results: random and "bad" subnetworks of the same size, scored like the real one.

- ``random``: the same number of kept heads, MLPs (and, for magnitude pruning, weights in every matrix) as the
  reference masks, at positions drawn uniformly at random.
- ``bad``: the components the reference *pruned*, cut at random (when more were pruned than kept) or topped up with
  randomly drawn kept ones (when fewer) to the same size: the subnetwork pruning judged least useful.

Weight masks keep the reference's count per matrix, so the layer-wise sparsity profile is the same. Re-fine-tuning
a control (or the pruned subnetwork itself) from pretrained weights is :func:`attnpatterns.finetuning.finetune.finetune`
with ``subnetwork=`` the control.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning.result import PruningResult
from attnpatterns.pruning.structured import meets_target
from attnpatterns.tasks.evaluation import evaluate
from attnpatterns.tasks.task import Task, limit_examples

CONTROL_KINDS = ("random", "bad")


def random_mask(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 array shaped like ``reference`` with as many ones, at random positions."""
    flat = np.zeros(reference.size, np.float32)
    flat[rng.choice(reference.size, int(reference.sum()), replace=False)] = 1
    return flat.reshape(reference.shape)


def bad_mask(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep what ``reference`` pruned, cut or topped up at random to as many ones as ``reference`` has."""
    flat_ref = reference.reshape(-1)
    size = int(flat_ref.sum())
    pruned = np.flatnonzero(flat_ref == 0)
    kept = np.flatnonzero(flat_ref == 1)
    if len(pruned) >= size:
        chosen = rng.choice(pruned, size, replace=False)
    else:
        chosen = np.concatenate([pruned, rng.choice(kept, size - len(pruned), replace=False)])
    flat = np.zeros(reference.size, np.float32)
    flat[chosen] = 1
    return flat.reshape(reference.shape)


_MAKERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {"random": random_mask, "bad": bad_mask}


def control_subnetwork(reference: Subnetwork, kind: str, seed: int = 0) -> Subnetwork:
    """The ``kind`` control of ``reference`` (same sizes), drawn with ``seed``."""
    if kind not in _MAKERS:
        raise ValueError(f"control kind must be one of {', '.join(CONTROL_KINDS)}, not {kind!r}.")
    if reference.head_mask is None and reference.mlp_mask is None and reference.weight_masks is None:
        raise ValueError("the reference subnetwork has no masks to imitate.")
    make = _MAKERS[kind]
    rng = np.random.default_rng(seed)
    head = None if reference.head_mask is None else make(reference.head_mask, rng)
    mlp = None if reference.mlp_mask is None else make(reference.mlp_mask, rng)
    weights = None
    if reference.weight_masks is not None:
        weights = {
            name: torch.from_numpy(make(mask.cpu().numpy().astype(np.float32), rng) == 1)
            for name, mask in sorted(reference.weight_masks.items())
        }
    return Subnetwork(head, mlp, weights)


def score_control(
    model: nn.Module,
    tokenizer,
    task: Task,
    reference: PruningResult,
    kind: str,
    seed: int = 0,
    max_length: int = 128,
    batch_size: int = 64,
    max_dev_examples: int | None = None,
) -> PruningResult:
    """Draw the ``kind`` control of ``reference`` and score it (and the full model) on the dev set."""
    sub = control_subnetwork(reference.subnetwork, kind, seed).check(model)
    dev = limit_examples(task.dev, max_dev_examples)
    start = time.perf_counter()
    full = evaluate(model, tokenizer, dev, task.num_labels, max_length, batch_size, metric=task.metric)[task.metric]
    middle = time.perf_counter()
    score = evaluate(model, tokenizer, dev, task.num_labels, max_length, batch_size, sub, task.metric)[task.metric]
    target = reference.threshold * full
    summary = sub.summary()
    steps = [
        {"step": 0, "phase": "full", "score": full, "passed": True, "seconds": round(middle - start, 3)},
        {"step": 1, "phase": kind, "score": score, "passed": meets_target(score, target), **summary,
         "seconds": round(time.perf_counter() - middle, 3)},
    ]
    config = {"kind": kind, "seed": seed, "reference_method": reference.method, "max_length": max_length,
              "max_dev_examples": max_dev_examples}
    return PruningResult(kind, task.metric, reference.threshold, float(full), float(score), sub, steps, config)
