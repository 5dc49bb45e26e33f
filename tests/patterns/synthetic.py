"""Procedurally generated attention maps of the five pattern types, for tests and for benchmarks run before the
project's corpus exists. Never used as the shipped classifier's training data.

Each map is a row-wise softmax of logits that encode the pattern plus noise (raw maps); normed maps are raw maps
whose columns are multiplied by random positive "value norms", so their rows do not sum to one.
"""

from __future__ import annotations

import numpy as np

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.patterns.io import LabeledSet


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def synthetic_map(pattern: str, n_tokens: int, rng: np.random.Generator, kind: str = "raw") -> np.ndarray:
    """One (n_tokens, n_tokens) float32 map of ``pattern``."""
    t = n_tokens
    logits = rng.normal(0.0, 0.5, size=(t, t))
    strength = rng.uniform(4.0, 7.0)
    rows = np.arange(t)
    if pattern in ("vertical", "vertical+diagonal"):
        n_cols = rng.integers(1, 3)
        cols = rng.choice([0, t - 1, *rng.integers(0, t, size=2)], size=n_cols, replace=False)
        logits[:, cols] += strength
    if pattern in ("diagonal", "vertical+diagonal"):
        offset = int(rng.choice([-1, 0, 1]))
        cols = np.clip(rows + offset, 0, t - 1)
        logits[rows, cols] += strength + (1.0 if pattern == "vertical+diagonal" else 0.0)
    if pattern == "block":
        cut = int(rng.integers(max(2, t // 4), max(3, 3 * t // 4)))
        same = (rows[:, None] < cut) == (rows[None, :] < cut)
        logits += np.where(same, strength * 0.6, 0.0)
        logits += rng.normal(0.0, 0.4, size=(t, t))
    if pattern == "heterogeneous":
        logits = rng.normal(0.0, 1.6, size=(t, t))
    arr = _softmax_rows(logits)
    if kind == "normed":
        arr = arr * rng.lognormal(0.0, 0.6, size=(1, t))
    return arr.astype(np.float32)


def synthetic_set(
    n_per_type: int = 12,
    kind: str = "raw",
    seed: int = 0,
    min_tokens: int = 6,
    max_tokens: int = 40,
    maps_per_text: int = 3,
) -> LabeledSet:
    """A labelled set with ``n_per_type`` maps of each type; every ``maps_per_text`` maps share a group."""
    rng = np.random.default_rng(seed)
    names, arrays, labels, groups = [], [], [], []
    for pattern in PATTERN_TYPES:
        for i in range(n_per_type):
            t = int(rng.integers(min_tokens, max_tokens + 1))
            names.append(f"{pattern}-{i:03d}")
            arrays.append(synthetic_map(pattern, t, rng, kind))
            labels.append(pattern)
            groups.append(f"text-{pattern}-{i // maps_per_text}")
    return LabeledSet(names, arrays, labels, groups, kind, source=f"synthetic(seed={seed})")
