"""Measure the `[CLS]`/`[SEP]` column the way annotations/GUIDELINE.md section 8 phrases its rule.

Whether a map is ``vertical+diagonal`` or ``diagonal`` often comes down to one question: is the weaker column (most
often `[CLS]`) lit in enough rows? The guideline answers in colours of the sheets (viridis, scaled per map from 0
to the map's maximum): the column must be *visible* in most content rows and *teal or brighter* in a good share of
them. This module counts those rows, so that an annotator in doubt, or a maintainer restating the rule, can check
a picture against numbers:

- a cell is **visible** when it reaches :data:`VISIBLE_LEVEL` (0.1) of the map's maximum: blue rather than the
  near-black purple of the background;
- it is **teal** when it reaches :data:`TEAL_LEVEL` (0.3) of the maximum: the colour map turns from blue to teal
  there;
- **content rows** are every row except the `[CLS]` query row and the `[SEP]` rows, which the guideline tells
  annotators to ignore (section 3).

:func:`rule_agreement` scores the rule "visible in at least ``v`` of the content rows *and* teal in at least ``t``"
against the labels of the ``vertical+diagonal`` and ``diagonal`` maps of a corpus, for a grid of ``v`` and ``t``;
``attnpatterns annotate columns`` prints it. These numbers describe the labels; they never replace looking at the
map, and the classifier does not use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

VISIBLE_LEVEL = 0.1
TEAL_LEVEL = 0.3
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")


@dataclass(frozen=True)
class ColumnCoverage:
    """How many content rows light one column: fractions in [0, 1]."""

    index: int  #: column (token position)
    token: str
    visible: float  #: share of content rows whose cell in this column reaches VISIBLE_LEVEL of the map's maximum
    teal: float  #: share of content rows whose cell reaches TEAL_LEVEL
    n_rows: int  #: content rows counted

    def meets(self, visible: float, teal: float) -> bool:
        return self.visible >= visible and self.teal >= teal


def special_columns(tokens: Sequence[str]) -> list[int]:
    """Positions of the special tokens (`[CLS]`, `[SEP]`, RoBERTa's `<s>`, `</s>`); position 0 when there are none."""
    found = [i for i, tok in enumerate(tokens) if tok in SPECIAL_TOKENS]
    return found or [0]


def column_coverage(
    array: np.ndarray,
    tokens: Sequence[str],
    columns: Iterable[int] | None = None,
    visible_level: float = VISIBLE_LEVEL,
    teal_level: float = TEAL_LEVEL,
) -> list[ColumnCoverage]:
    """Coverage of ``columns`` (default: the special-token columns) over the content rows of one (T, T) map."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square (T, T) map, got shape {a.shape}")
    if len(tokens) != a.shape[0]:
        raise ValueError(f"the map is {a.shape[0]} x {a.shape[0]} but there are {len(tokens)} tokens")
    if not np.isfinite(a).all() or (a < 0).any() or a.max() <= 0:
        raise ValueError("the map must be finite, non-negative and not all zero")
    special = set(special_columns(tokens)) | {0}
    rows = [i for i in range(a.shape[0]) if i not in special] or list(range(a.shape[0]))
    scaled = a[rows] / a.max()
    out = []
    for c in special_columns(tokens) if columns is None else columns:
        if not 0 <= c < a.shape[1]:
            raise ValueError(f"column {c} is outside the map (0..{a.shape[1] - 1})")
        values = scaled[:, c]
        out.append(ColumnCoverage(int(c), str(tokens[c]), float((values >= visible_level).mean()),
                                  float((values >= teal_level).mean()), len(rows)))
    return out


def strongest_column(array: np.ndarray, tokens: Sequence[str]) -> ColumnCoverage:
    """The special-token column with the widest coverage (visible share first, then teal share)."""
    return max(column_coverage(array, tokens), key=lambda c: (c.visible, c.teal))


@dataclass(frozen=True)
class RuleScore:
    """How well "visible in >= ``visible`` of the rows and teal in >= ``teal``" reproduces the labels."""

    visible: float
    teal: float
    agreement: float  #: share of the maps where the rule and the label agree
    vd_recall: float  #: share of ``vertical+diagonal`` maps the rule calls ``vertical+diagonal``
    d_kept: float  #: share of ``diagonal`` maps the rule leaves ``diagonal``
    n_vd: int
    n_d: int


def rule_agreement(
    maps: Iterable,
    visible_grid: Sequence[float] = (0.5, 0.6, 2 / 3),
    teal_grid: Sequence[float] = (0.25, 1 / 3, 0.5),
) -> list[RuleScore]:
    """Score the column rule on the ``vertical+diagonal`` and ``diagonal`` maps among ``maps`` (objects with
    ``array``, ``tokens`` and ``label``, e.g. :class:`~attnpatterns.annotation.corpus.LabeledMap`)."""
    strongest, is_vd = [], []
    for m in maps:
        if m.label in ("vertical+diagonal", "diagonal"):
            strongest.append(strongest_column(m.array, m.tokens))
            is_vd.append(m.label == "vertical+diagonal")
    if not strongest:
        raise ValueError("no vertical+diagonal or diagonal maps to score the rule on")
    y = np.array(is_vd)
    scores = []
    for v in visible_grid:
        for t in teal_grid:
            called = np.array([c.meets(v, t) for c in strongest])
            scores.append(RuleScore(
                float(v), float(t), float((called == y).mean()),
                float(called[y].mean()) if y.any() else float("nan"),
                float((~called[~y]).mean()) if (~y).any() else float("nan"), int(y.sum()), int((~y).sum()),
            ))
    return scores
