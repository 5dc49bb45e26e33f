"""The survival heatmap: for every (layer, head), the share of seeds whose pruning kept it; super-survivors outlined."""

from __future__ import annotations

import numpy as np


def plot_survival_heatmap(frequency: np.ndarray, super_mask: np.ndarray | None = None, ax=None,
                          title: str | None = None, annotate: bool = True):
    """Draw ``frequency`` (layers x heads, values in [0, 1]) on ``ax`` (a new figure when None); return the Axes.

    Rows are layers (layer 0 at the top), columns heads (original ids). Cells kept in every seed (``super_mask``) are
    outlined in black.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    frequency = np.asarray(frequency, dtype=np.float64)
    L, H = frequency.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.45 * H, 1.0 + 0.4 * L))
    image = ax.imshow(frequency, cmap="Greens", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of seeds that kept the head")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if annotate and L * H <= 400:
        for (l, h), value in np.ndenumerate(frequency):
            text = f"{value:.0f}" if value in (0, 1) else f"{value:.1f}".lstrip("0")
            ax.text(h, l, text, ha="center", va="center", fontsize=6,
                    color="white" if value > 0.6 else "black")
    if super_mask is not None:
        for l, h in zip(*np.nonzero(np.asarray(super_mask) == 1)):
            ax.add_patch(Rectangle((h - 0.5, l - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
    if title:
        ax.set_title(title)
    return ax
