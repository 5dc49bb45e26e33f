"""Cheap hand-made pattern scores, used only to pre-sort or balance maps for annotation, never as labels.

Every score is in [0, 1] and is computed on the row-normalised map (each query's weights sum to one; norm-weighted
maps are not probabilities, so they are normalised the same way first):

- ``vertical``: mass that the average query puts on the two most-attended columns;
- ``diagonal``: mass on the strongest of the offsets -1, 0, +1 (self, previous or next token);
- ``vertical+diagonal``: 1.5 x the smaller of the two above (capped at 1), so it is high only when both are and
  beats either alone when both are clear;
- ``block``: how much more mass stays inside the query's own segment than a uniform map would keep there, once
  the two strongest columns and the diagonal band are removed (only pairs have segments; singles score 0);
- ``heterogeneous``: mean normalised entropy of the rows after the same removal, times the mass that removal
  left (a clean stripe or diagonal leaves little, so its faint remainder does not count as texture).

:func:`heuristic_probabilities` turns them into a distribution (softmax with a temperature) so they can stand in
for a classifier's suggestion; the notebook says "heuristic" when it does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnpatterns.constants import PATTERN_TYPES

_EPS = 1e-12


def _rows(array: np.ndarray) -> np.ndarray:
    a = np.clip(np.asarray(array, dtype=np.float64), 0, None)
    return a / (a.sum(axis=1, keepdims=True) + _EPS)


def heuristic_scores(array: np.ndarray, segment_ids: Sequence[int] | None = None) -> dict[str, float]:
    """Scores in [0, 1] for each pattern type of a (T, T) map (see the module docstring)."""
    p = _rows(array)  # (T, T), rows sum to 1
    t = p.shape[0]
    col = p.mean(axis=0)  # (T,)
    top = np.argsort(col)[::-1][:2]
    vertical = float(col[top].sum())
    diag = max(float(np.mean(np.diagonal(p, offset=o))) for o in (-1, 0, 1) if t > abs(o))
    rest = p.copy()
    rest[:, top] = 0.0
    idx = np.arange(t)
    for o in (-1, 0, 1):
        keep = (idx + o >= 0) & (idx + o < t)
        rest[idx[keep], idx[keep] + o] = 0.0
    residual = float(rest.sum(axis=1).mean())
    rest = rest / (rest.sum(axis=1, keepdims=True) + _EPS)  # (T, T)
    block = 0.0
    seg = np.asarray(segment_ids if segment_ids is not None else [0] * t)
    if len(set(seg.tolist())) > 1:
        same = seg[:, None] == seg[None, :]
        inside = (rest * same).sum(axis=1).mean()
        uniform = same.mean()
        block = float(np.clip((inside - uniform) / (1 - uniform + _EPS), 0, 1))
    ent = -(rest * np.log(rest + _EPS)).sum(axis=1) / np.log(max(t - 3, 2))
    hetero = float(np.clip(ent.mean() * residual, 0, 1))
    return {
        "vertical": vertical, "diagonal": diag, "vertical+diagonal": min(1.0, 1.5 * min(vertical, diag)),
        "block": block, "heterogeneous": hetero,
    }


def heuristic_probabilities(
    array: np.ndarray, segment_ids: Sequence[int] | None = None, temperature: float = 0.1
) -> np.ndarray:
    """Softmax of :func:`heuristic_scores` over :data:`PATTERN_TYPES` (a rough guess, not a classifier)."""
    s = heuristic_scores(array, segment_ids)
    z = np.array([s[name] for name in PATTERN_TYPES]) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def heuristic_label(array: np.ndarray, segment_ids: Sequence[int] | None = None) -> str:
    """The type with the highest heuristic probability."""
    return PATTERN_TYPES[int(np.argmax(heuristic_probabilities(array, segment_ids)))]
