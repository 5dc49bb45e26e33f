"""Pattern-type distributions over maps, per head and per layer.

The statistics treat the *head* as the unit, so everything here starts from :class:`HeadCounts`: for each
head, how many of its maps (one per example) fell into each of the five pattern types. Pooled proportions over
maps (the paper's numbers), per-head majority types and per-layer distributions are all derived from those
counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from attnpatterns.constants import PATTERN_TYPES

Head = tuple[int, int]


@dataclass(frozen=True)
class HeadCounts:
    """Per-head counts of pattern types for one map kind of one condition.

    ``counts[i, t]`` is the number of maps of head ``heads[i]`` labelled ``PATTERN_TYPES[t]``.
    """

    heads: tuple[Head, ...]
    counts: np.ndarray  # (n_heads, 5) int

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.int64).reshape(len(self.heads), len(PATTERN_TYPES))
        object.__setattr__(self, "counts", counts)

    def __len__(self) -> int:
        return len(self.heads)

    @property
    def n_maps(self) -> np.ndarray:
        """(n_heads,) maps per head."""
        return self.counts.sum(axis=1)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def proportions(self) -> np.ndarray:
        """(5,) pooled proportion of each type over all maps of these heads (NaN when there are none)."""
        total = self.counts.sum()
        if total == 0:
            return np.full(len(PATTERN_TYPES), np.nan)
        return self.counts.sum(axis=0) / total

    def fractions(self) -> np.ndarray:
        """(n_heads, 5) per-head fraction of each type."""
        n = self.n_maps[:, None]
        return np.divide(self.counts, n, out=np.full(self.counts.shape, np.nan), where=n > 0)

    def majority(self) -> np.ndarray:
        """(n_heads,) index into PATTERN_TYPES of each head's most frequent type.

        Ties go to the type listed first in :data:`PATTERN_TYPES` (vertical, diagonal, vertical+diagonal,
        block, heterogeneous), so a head is called heterogeneous only when that is strictly its most frequent
        type.
        """
        return np.argmax(self.counts, axis=1)

    def subset(self, heads: Iterable[Head]) -> "HeadCounts":
        index = {h: i for i, h in enumerate(self.heads)}
        chosen = [h for h in heads if h in index]
        rows = [index[h] for h in chosen]
        return HeadCounts(tuple(chosen), self.counts[rows] if rows else np.zeros((0, len(PATTERN_TYPES))))

    def without(self, heads: Iterable[Head]) -> "HeadCounts":
        drop = set(heads)
        return self.subset([h for h in self.heads if h not in drop])


def head_counts(maps: pd.DataFrame, kind: str) -> HeadCounts:
    """Count pattern types per head for the maps of one kind (``maps`` as in a classification table)."""
    sub = maps[maps["kind"] == kind]
    if sub.empty:
        return HeadCounts((), np.zeros((0, len(PATTERN_TYPES))))
    table = pd.crosstab([sub["layer"], sub["head"]], sub["label"])
    table = table.reindex(columns=list(PATTERN_TYPES), fill_value=0).sort_index()
    heads = tuple((int(a), int(b)) for a, b in table.index)
    return HeadCounts(heads, table.to_numpy())


def majority_frame(counts: HeadCounts, survivors: Iterable[Head] = ()) -> pd.DataFrame:
    """One row per head: layer, head, n_maps, majority_type, frac_<type> x5, survivor (bool)."""
    keep = set(survivors)
    frac = counts.fractions()
    major = counts.majority()
    rows = []
    for i, (layer, head) in enumerate(counts.heads):
        row = {
            "layer": layer,
            "head": head,
            "n_maps": int(counts.n_maps[i]),
            "majority_type": PATTERN_TYPES[major[i]],
        }
        row.update({f"frac_{t}": float(frac[i, j]) for j, t in enumerate(PATTERN_TYPES)})
        row["survivor"] = (layer, head) in keep
        rows.append(row)
    columns = ["layer", "head", "n_maps", "majority_type", *[f"frac_{t}" for t in PATTERN_TYPES], "survivor"]
    return pd.DataFrame(rows, columns=columns)


def layer_distribution(counts: HeadCounts) -> pd.DataFrame:
    """One row per (layer, type): n_maps of the layer and the pooled proportion of the type in that layer."""
    rows = []
    layers = sorted({layer for layer, _ in counts.heads})
    for layer in layers:
        sub = counts.subset([h for h in counts.heads if h[0] == layer])
        props = sub.proportions()
        for j, t in enumerate(PATTERN_TYPES):
            rows.append({"layer": layer, "type": t, "n_maps": sub.total, "proportion": float(props[j])})
    return pd.DataFrame(rows, columns=["layer", "type", "n_maps", "proportion"])
