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

:func:`candidate_score` is a sharper score for finding candidates of the two types that are rare in MiniLM (raw
``block``, ``vertical+diagonal``); ``build-corpus --favour`` uses it to put more of them in front of annotators.
On the pretrained MiniLM's 650 maps per kind (labelled before any favouring) its ROC AUC against the annotators'
labels is: raw block 0.83 (the score above: 0.78), raw vertical+diagonal 0.96 (0.94), normed vertical+diagonal 0.94
(0.86), normed block 0.79 (0.74); ``uv run python benchmarks/candidate_scores.py --model all-MiniLM-L6-v2``.
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


CANDIDATE_TYPES: tuple[str, ...] = ("block", "vertical+diagonal")


def _block_candidate(p: np.ndarray, segment_ids: Sequence[int] | None, band: int = 2) -> float:
    seg = np.asarray(segment_ids if segment_ids is not None else [0] * p.shape[0])
    if len(set(seg.tolist())) < 2:
        return 0.0
    t = p.shape[0]
    rest = p.copy()
    rest[:, np.argsort(p.mean(axis=0))[::-1][:2]] = 0.0  # the two strongest columns
    idx = np.arange(t)
    far = np.abs(idx[:, None] - idx[None, :]) > band  # away from the diagonal band
    rest = rest * far
    same = seg[:, None] == seg[None, :]
    inside = (rest * same).sum() / (rest.sum() + _EPS)
    uniform = (same & far).sum() / (far.sum() + _EPS)
    excess = float(np.clip((inside - uniform) / (1 - uniform + _EPS), 0, 1))
    return excess * min(1.0, 3.0 * float(rest.sum()) / t)  # a faint remainder under a stripe does not count


def _vertical_diagonal_candidate(p: np.ndarray, band: int = 1) -> float:
    t = p.shape[0]
    if t < 8:
        return 0.0
    idx = np.arange(t)
    off_band = p * (np.abs(idx[:, None] - idx[None, :]) > band)
    col = off_band[1:-1].mean(axis=0)  # stripe strength over content rows, diagonal cells left out
    top = int(np.argmax(col))
    rest = p.copy()
    rest[:, top] = 0.0
    diag = max(float(np.mean(np.diagonal(rest, offset=o))) for o in (-1, 0, 1))
    return float(min(col[top], diag))


def candidate_score(array: np.ndarray, segment_ids: Sequence[int] | None, pattern: str) -> float:
    """How much a map looks like ``pattern`` (``block`` or ``vertical+diagonal``), for pre-sorting only.

    - ``block``: of the weight left after removing the two strongest columns and the band |i - j| <= 2, the excess
      share that stays inside the query's own segment (pairs only), damped when that remainder is faint;
    - ``vertical+diagonal``: the smaller of the strongest column's off-diagonal mass over content rows and the
      strongest diagonal (offset -1, 0, +1) once that column is removed; maps under 8 tokens score 0.
    """
    if pattern not in CANDIDATE_TYPES:
        raise ValueError(f"no candidate score for {pattern!r}; use one of {', '.join(CANDIDATE_TYPES)}")
    p = _rows(array)
    if pattern == "block":
        return _block_candidate(p, segment_ids)
    return _vertical_diagonal_candidate(p)
