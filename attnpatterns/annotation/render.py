"""Pictures for annotators: one attention map with its tokens, or a numbered sheet (grid) of maps.

Both follow the conventions of the guideline: rows are queries (top = [CLS]), columns are attended tokens (left =
[CLS]); colours are scaled per map (0 = darkest, the map's largest value = brightest), so faint and strong heads
look alike; [CLS]/[SEP] tick labels are red; for sentence pairs a dashed line marks where segment B starts.

Functions are pure: arrays and tokens in, a matplotlib ``Axes``/``Figure`` out; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "<s>", "</s>"})
CMAP = "viridis"
#: Above this many tokens only the special tokens get tick labels (the rest would be unreadable).
MAX_LABELLED_TOKENS = 30
SPECIAL_COLOUR = "#d62728"
BOUNDARY_COLOUR = "white"


@dataclass(frozen=True)
class SheetCell:
    """One map on a sheet: the array, its tokens/segments, the big number, and a short caption."""

    array: np.ndarray
    tokens: Sequence[str]
    segment_ids: Sequence[int] | None = None
    number: int | str = ""
    caption: str = ""


def segment_boundaries(segment_ids: Sequence[int] | None) -> list[int]:
    """Positions where a new segment starts (e.g. the first token of sentence B)."""
    if segment_ids is None:
        return []
    return [i for i in range(1, len(segment_ids)) if segment_ids[i] != segment_ids[i - 1]]


def render_map(
    array: np.ndarray,
    tokens: Sequence[str] | None = None,
    segment_ids: Sequence[int] | None = None,
    ax=None,
    title: str | None = None,
    show_tokens: bool | None = None,
    fontsize: float | None = None,
    colorbar: bool = False,
    cmap: str = CMAP,
):
    """Draw one (T, T) map on ``ax`` (a new figure when None) and return the Axes.

    ``show_tokens``: True labels every token, False none, None (default) every token up to
    :data:`MAX_LABELLED_TOKENS` tokens and only [CLS]/[SEP] above that.
    """
    import matplotlib.pyplot as plt

    a = np.asarray(array, dtype=np.float32)
    t = a.shape[0]
    tokens = list(tokens) if tokens is not None else [str(i) for i in range(t)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    vmax = float(a.max()) if a.size and a.max() > 0 else 1.0
    image = ax.imshow(a, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for b in segment_boundaries(segment_ids):
        ax.axhline(b - 0.5, color=BOUNDARY_COLOUR, lw=1.0, ls="--", alpha=0.9)
        ax.axvline(b - 0.5, color=BOUNDARY_COLOUR, lw=1.0, ls="--", alpha=0.9)
    label_all = t <= MAX_LABELLED_TOKENS if show_tokens is None else show_tokens
    if label_all:
        positions = list(range(t))
    elif show_tokens is None:
        positions = [i for i, tok in enumerate(tokens) if tok in SPECIAL_TOKENS]
    else:
        positions = []
    size = fontsize or max(4.0, min(9.0, 220.0 / max(t, 1)))
    ax.set_xticks(positions)
    ax.set_yticks(positions)
    ax.set_xticklabels([tokens[i] for i in positions], rotation=90, fontsize=size)
    ax.set_yticklabels([tokens[i] for i in positions], fontsize=size)
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for lab in labels:
            if lab.get_text() in SPECIAL_TOKENS:
                lab.set_color(SPECIAL_COLOUR)
                lab.set_fontweight("bold")
    ax.tick_params(length=2, pad=1)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def render_sheet(
    cells: Sequence[SheetCell],
    ncols: int = 4,
    cell_inches: float = 3.4,
    title: str | None = None,
    dpi: int = 100,
    slots: int | None = None,
):
    """A grid of maps, each with a big number (top left) and a caption (top right); returns the Figure.

    ``slots`` fixes the grid size (empty cells stay blank), so every sheet of a batch has the same layout.

    Cells stay square and large (``cell_inches`` each) so a viewer can judge the pattern; token labels follow
    :func:`render_map` (all tokens up to 30, else only [CLS]/[SEP]).
    """
    import matplotlib.pyplot as plt

    n = max(len(cells), slots or 0, 1)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * cell_inches, nrows * (cell_inches + 0.35) + (0.5 if title else 0)),
        squeeze=False, dpi=dpi,
    )
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, cell in zip(axes.flat, cells):
        t = np.asarray(cell.array).shape[0]
        render_map(cell.array, cell.tokens, cell.segment_ids, ax=ax, fontsize=max(4.0, min(7.0, 160.0 / t)))
        ax.set_title(str(cell.number), loc="left", fontsize=22, fontweight="bold", pad=4)
        if cell.caption:
            ax.set_title(cell.caption, loc="right", fontsize=10, pad=4)
    if title:
        fig.suptitle(title, fontsize=14, fontweight="bold")
    fig.tight_layout()
    return fig
