"""Measure the `[CLS]`/`[SEP]` columns the way annotations/GUIDELINE.md section 8 phrases its rules.

Two hard calls of the guideline come down to how many rows light one column (most often `[CLS]`): is the column
beside a diagonal strong enough for ``vertical+diagonal`` (or is the map ``diagonal``), and does a column over
sentence squares outrank them (``vertical``, or ``block``)? Annotators judge this by colour on the sheets
(viridis, scaled per map from 0 to the map's maximum). This module counts the rows, so that a maintainer
restating a rule, or an adjudicator in doubt, can check a picture against numbers. The colour names of the
levels are those of the guideline's colour-scale figure (``figures/colour-scale.png``):

====== =================== ==========================================================
level  colour (viridis)     role in the guideline
====== =================== ==========================================================
0.1    dark violet          *visible*: just above the near-black purple background
0.2    indigo blue          a column over sentence squares that outranks them
0.3    steel blue           *lit*: the weaker column of ``vertical+diagonal``
0.4    teal-blue            (teal proper is about 0.5)
====== =================== ==========================================================

Shares are over the **content rows**: every row except the `[CLS]` query row and the `[SEP]` rows, which the
guideline tells annotators to ignore (section 3).

:func:`rule_agreement` scores "visible in at least ``v`` of the content rows *and* lit in at least ``t``" against
the labels of the ``vertical+diagonal`` and ``diagonal`` maps of a corpus, and :func:`stripe_agreement` scores
"indigo blue or brighter in at least ``f``" against the ``vertical`` and ``block`` maps of sentence pairs;
:func:`lone_column_agreement` scores "one column is visible in at least ``v`` and the brightest cell of its row in at
least ``d``" against the ``vertical`` and ``heterogeneous`` maps (:func:`dominant_column`: any token, not only the
special ones); ``attnpatterns annotate columns`` prints all three. The numbers describe the labels; they never
replace looking at the map, and the classifier does not use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Brightness levels (fractions of the map's maximum) at which shares of rows are counted.
LEVELS = (0.1, 0.2, 0.3, 0.4)
#: The guideline's names for the levels (viridis colours).
LEVEL_COLOURS = {0.1: "dark violet", 0.2: "indigo blue", 0.3: "steel blue", 0.4: "teal-blue"}
VISIBLE_LEVEL = 0.1  #: a column is *visible* in a row from here
STRIPE_LEVEL = 0.2  #: a column over sentence squares is counted from here
LIT_LEVEL = 0.3  #: a column is *lit* in a row from here
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")


@dataclass(frozen=True)
class ColumnCoverage:
    """How many content rows light one column: for every level of :data:`LEVELS`, the share of rows in [0, 1]."""

    index: int  #: column (token position)
    token: str
    shares: tuple[float, ...]  #: share of content rows whose cell reaches each level of LEVELS (of the map maximum)
    n_rows: int  #: content rows counted

    def share(self, level: float) -> float:
        if level not in LEVELS:
            raise ValueError(f"level {level} is not one of {LEVELS}")
        return self.shares[LEVELS.index(level)]

    @property
    def visible(self) -> float:
        return self.share(VISIBLE_LEVEL)

    @property
    def lit(self) -> float:
        return self.share(LIT_LEVEL)

    def meets(self, visible: float, lit: float) -> bool:
        """The section 8 rule for the weaker column of ``vertical+diagonal``."""
        return self.visible >= visible and self.lit >= lit


def special_columns(tokens: Sequence[str]) -> list[int]:
    """Positions of the special tokens (`[CLS]`, `[SEP]`, RoBERTa's `<s>`, `</s>`); position 0 when there are none."""
    found = [i for i, tok in enumerate(tokens) if tok in SPECIAL_TOKENS]
    return found or [0]


def content_rows(array: np.ndarray, tokens: Sequence[str]) -> np.ndarray:
    """The content rows of one (T, T) map (every row but the `[CLS]` query row and the special-token rows; all rows
    if that leaves none), scaled by the map's maximum as the sheets colour it. Refuses maps that are not square, do not
    match ``tokens``, or are not finite, non-negative and non-zero."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square (T, T) map, got shape {a.shape}")
    if len(tokens) != a.shape[0]:
        raise ValueError(f"the map is {a.shape[0]} x {a.shape[0]} but there are {len(tokens)} tokens")
    if not np.isfinite(a).all() or (a < 0).any() or a.max() <= 0:
        raise ValueError("the map must be finite, non-negative and not all zero")
    special = set(special_columns(tokens)) | {0}
    rows = [i for i in range(a.shape[0]) if i not in special] or list(range(a.shape[0]))
    return a[rows] / a.max()


def column_coverage(
    array: np.ndarray, tokens: Sequence[str], columns: Iterable[int] | None = None
) -> list[ColumnCoverage]:
    """Coverage of ``columns`` (default: the special-token columns) over the content rows of one (T, T) map."""
    scaled = content_rows(array, tokens)
    rows = scaled.shape[0]
    out = []
    for c in special_columns(tokens) if columns is None else columns:
        if not 0 <= c < scaled.shape[1]:
            raise ValueError(f"column {c} is outside the map (0..{scaled.shape[1] - 1})")
        values = scaled[:, c]
        shares = tuple(float((values >= level).mean()) for level in LEVELS)
        out.append(ColumnCoverage(int(c), str(tokens[c]), shares, rows))
    return out


def strongest_column(array: np.ndarray, tokens: Sequence[str]) -> ColumnCoverage:
    """The special-token column with the widest coverage (compared level by level, dimmest first)."""
    return max(column_coverage(array, tokens), key=lambda c: c.shares)


@dataclass(frozen=True)
class RuleScore:
    """How well one threshold rule reproduces the labels of two types (``positive`` and ``negative``)."""

    thresholds: tuple[float, ...]  #: the rule's shares of rows (see the function that made it)
    agreement: float  #: share of the maps where the rule and the label agree
    positive_called: float  #: share of ``positive`` maps the rule calls ``positive``
    negative_kept: float  #: share of ``negative`` maps the rule leaves ``negative``
    n_positive: int
    n_negative: int


def _score(called: np.ndarray, y: np.ndarray, thresholds: tuple[float, ...]) -> RuleScore:
    return RuleScore(
        thresholds, float((called == y).mean()),
        float(called[y].mean()) if y.any() else float("nan"),
        float((~called[~y]).mean()) if (~y).any() else float("nan"), int(y.sum()), int((~y).sum()),
    )


def _strongest_by_label(maps: Iterable, positive: str, negative: str, pairs_only: bool = False):
    strongest, y = [], []
    for m in maps:
        if m.label in (positive, negative) and (not pairs_only or getattr(m, "text_kind", "single") == "pair"):
            strongest.append(strongest_column(m.array, m.tokens))
            y.append(m.label == positive)
    if not strongest:
        where = " of sentence pairs" if pairs_only else ""
        raise ValueError(f"no {positive} or {negative} maps{where} to score the rule on")
    return strongest, np.array(y)


def rule_agreement(
    maps: Iterable,
    visible_grid: Sequence[float] = (0.5, 0.6, 2 / 3),
    lit_grid: Sequence[float] = (0.25, 1 / 3, 0.5),
) -> list[RuleScore]:
    """Score "visible in >= v of the content rows and lit in >= t" (thresholds ``(v, t)``) on the
    ``vertical+diagonal`` (positive) and ``diagonal`` maps among ``maps`` (objects with ``array``, ``tokens`` and
    ``label``, e.g. :class:`~attnpatterns.annotation.corpus.LabeledMap`)."""
    strongest, y = _strongest_by_label(maps, "vertical+diagonal", "diagonal")
    return [_score(np.array([c.meets(v, t) for c in strongest]), y, (float(v), float(t)))
            for v in visible_grid for t in lit_grid]


def stripe_agreement(maps: Iterable, grid: Sequence[float] = (0.5, 0.6, 2 / 3)) -> list[RuleScore]:
    """Score "indigo blue or brighter in >= f of the content rows" (thresholds ``(f,)``) on the ``vertical``
    (positive) and ``block`` maps of sentence pairs among ``maps``."""
    strongest, y = _strongest_by_label(maps, "vertical", "block", pairs_only=True)
    return [_score(np.array([c.share(STRIPE_LEVEL) >= f for c in strongest]), y, (float(f),)) for f in grid]


@dataclass(frozen=True)
class DominantColumn:
    """The column (any token) that is the brightest cell of the most content rows of one map."""

    index: int  #: column (token position)
    token: str
    dominant: float  #: share of content rows in which this column holds the row's brightest cell (ties count)
    visible: float  #: share of content rows in which it reaches the visible level (0.1 of the map maximum)
    n_rows: int


def dominant_column(array: np.ndarray, tokens: Sequence[str]) -> DominantColumn:
    """Of every column of one (T, T) map, the one that holds the brightest cell of the most content rows (ties
    between columns: the more visible one, then the leftmost). This is how GUIDELINE.md §3 asks whether a lone
    stripe is "clearly the brightest thing" row by row, against texture about as bright (``heterogeneous``)."""
    scaled = content_rows(array, tokens)
    dominant = (scaled >= scaled.max(axis=1, keepdims=True)).mean(axis=0)
    visible = (scaled >= VISIBLE_LEVEL).mean(axis=0)
    best = max(range(scaled.shape[1]), key=lambda c: (dominant[c], visible[c], -c))
    return DominantColumn(best, str(tokens[best]), float(dominant[best]), float(visible[best]), scaled.shape[0])


def lone_column_agreement(
    maps: Iterable,
    visible_grid: Sequence[float] = (0.5, 2 / 3),
    dominant_grid: Sequence[float] = (0.3, 0.4, 0.5),
) -> list[RuleScore]:
    """Score "one column is visible in >= v of the content rows and the brightest cell of its row in >= d of them"
    (thresholds ``(v, d)``) on the ``vertical`` (positive) and ``heterogeneous`` maps among ``maps``: the open point
    of GUIDELINE.md §8 on a lone column lit in only part of the rows, over texture."""
    columns, y = [], []
    for m in maps:
        if m.label in ("vertical", "heterogeneous"):
            columns.append(dominant_column(m.array, m.tokens))
            y.append(m.label == "vertical")
    if not columns:
        raise ValueError("no vertical or heterogeneous maps to score the rule on")
    y = np.array(y)
    return [_score(np.array([c.visible >= v and c.dominant >= d for c in columns]), y, (float(v), float(d)))
            for v in visible_grid for d in dominant_grid]


def coverage_line(name: str, array: np.ndarray, tokens: Sequence[str]) -> str:
    """One line per map: the share of content rows each special column reaches at every level of :data:`LEVELS`."""
    coverage = column_coverage(array, tokens)
    cells = [f"{c.token}@{c.index}: " + " ".join(f"{v:.2f}" for v in c.shares) for c in coverage]
    return f"{name}  ({coverage[0].n_rows} content rows)  " + "; ".join(cells)


def rule_tables(maps: Sequence, kind: str) -> str:
    """GUIDELINE §8's rules scored against the labels of ``maps`` (one kind), as markdown tables:
    vertical+diagonal against diagonal over the (visible, lit) thresholds, vertical against block in sentence
    pairs over the stripe coverage, and vertical against heterogeneous over the (visible, dominant) shares of the
    dominant column. Raises ValueError when there is nothing to score for the first rule."""
    maps = list(maps)
    scores = rule_agreement(maps)
    lines = _table(
        f"\nvertical+diagonal against diagonal: 'visible (>= {VISIBLE_LEVEL:g}) in >= v and lit "
        f"(>= {LIT_LEVEL:g}) in >= t of the content rows', strongest special column, {kind} labels "
        f"({scores[0].n_positive} vertical+diagonal, {scores[0].n_negative} diagonal maps):",
        ("v", "t", "agreement", "vertical+diagonal called", "diagonal kept"), scores)
    try:
        stripes = stripe_agreement(maps)
    except ValueError as err:
        lines.append(f"\n(no vertical/block table: {err})")
    else:
        lines += _table(
            f"\nvertical against block, sentence pairs: '>= {STRIPE_LEVEL:g} in >= f of the content rows' "
            f"({stripes[0].n_positive} vertical, {stripes[0].n_negative} block maps):",
            ("f", "agreement", "vertical called", "block kept"), stripes)
    try:
        lone = lone_column_agreement(maps)
    except ValueError as err:
        return "\n".join([*lines, f"\n(no vertical/heterogeneous table: {err})"])
    lines += _table(
        f"\nvertical against heterogeneous: 'one column visible (>= {VISIBLE_LEVEL:g}) in >= v and the brightest cell "
        f"of its row in >= d of the content rows' ({lone[0].n_positive} vertical, {lone[0].n_negative} "
        "heterogeneous maps):",
        ("v", "d", "agreement", "vertical called", "heterogeneous kept"), lone)
    return "\n".join(lines)


def _table(title: str, header: Sequence[str], scores: Sequence[RuleScore]) -> list[str]:
    """A markdown table of rule scores: one row per threshold setting, then agreement and the two kept shares."""
    lines = [title, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in scores:
        cells = [f"{t:.2f}" for t in s.thresholds] + [f"{s.agreement:.3f}", f"{s.positive_called:.2f}",
                                                      f"{s.negative_kept:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
