"""Figures of the comparison: stacked type distributions, proportions with intervals, heads x layers grids.

Every ``plot_*`` function takes plain data (tidy data frames or arrays) and an optional matplotlib ``Axes``,
draws on it and returns it; with no ``Axes`` it makes a new :class:`matplotlib.figure.Figure` (never pyplot's
global state, never ``show()``). :func:`task_figures` assembles the standard figures of one task from a
comparison result, and :func:`save_figure` writes a figure as PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from attnpatterns.constants import (
    ALL_HEADS,
    CONDITIONS,
    FINETUNED,
    LAYER_HEAD,
    LAYER_KINDS,
    MAP_KINDS,
    PATTERN_TYPES,
    PRETRAINED,
    SUPER_SURVIVORS,
)

#: One colour per pattern type (Okabe-Ito, colour-blind safe); heterogeneous gets the most salient one.
TYPE_COLORS: dict[str, str] = {
    "vertical": "#0072B2",
    "diagonal": "#56B4E9",
    "vertical+diagonal": "#009E73",
    "block": "#E69F00",
    "heterogeneous": "#D55E00",
}
MISSING_COLOR = "#EEEEEE"
#: Short condition labels for axes.
SHORT_CONDITION = {
    f"{w}, {h}": f"{w}\n{'super-surv.' if h == SUPER_SURVIVORS else h}" for w, h in CONDITIONS  # as condition_label
}
CONDITION_ORDER = tuple(SHORT_CONDITION)


def _new_axes(figsize=(5, 4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.subplots()


def _type_handles():
    from matplotlib.patches import Patch

    return [Patch(facecolor=TYPE_COLORS[t], label=t) for t in PATTERN_TYPES]


def _ordered_conditions(conditions: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(conditions))
    return [c for c in CONDITION_ORDER if c in present] + [c for c in present if c not in CONDITION_ORDER]


# ------------------------------------------------------------------------------------------------------------
# Distributions
# ------------------------------------------------------------------------------------------------------------


def plot_type_bars(distribution, ax=None, title: str | None = None, legend: bool = True):
    """Stacked bars of the type proportions, one bar per condition.

    ``distribution``: tidy frame with columns ``condition``, ``type``, ``proportion`` (one task and kind).
    """
    ax = ax or _new_axes()
    conditions = _ordered_conditions(distribution["condition"])
    table = distribution.pivot_table(index="condition", columns="type", values="proportion", aggfunc="first")
    bottom = np.zeros(len(conditions))
    x = np.arange(len(conditions))
    for t in PATTERN_TYPES:
        values = np.nan_to_num(
            np.array([table.loc[c, t] if t in table else np.nan for c in conditions], float)
        )
        ax.bar(
            x,
            values,
            bottom=bottom,
            color=TYPE_COLORS[t],
            label=t,
            width=0.7,
            edgecolor="white",
            linewidth=0.5,
        )
        for xi, (v, b) in enumerate(zip(values, bottom)):
            if v >= 0.06:
                ax.text(xi, b + v / 2, f"{v:.0%}", ha="center", va="center", fontsize=7, color="white")
        bottom += values
    ax.set_xticks(x)
    ax.set_xticklabels([SHORT_CONDITION.get(c, c) for c in conditions], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of maps (examples x heads)")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(
            handles=_type_handles(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False
        )
    return ax


def plot_type_intervals(distribution, ax=None, title: str | None = None, legend: bool = True):
    """Proportion of each type with its bootstrap interval, one marker per condition.

    ``distribution``: tidy frame with ``condition``, ``type``, ``proportion``, ``ci_low``, ``ci_high``.
    """
    ax = ax or _new_axes((6, 3.5))
    conditions = _ordered_conditions(distribution["condition"])
    markers = ["o", "s", "^", "D"]
    width = 0.7
    step = width / max(1, len(conditions))
    for k, cond in enumerate(conditions):
        sub = distribution[distribution["condition"] == cond].set_index("type").reindex(list(PATTERN_TYPES))
        x = np.arange(len(PATTERN_TYPES)) - width / 2 + step * (k + 0.5)
        y = sub["proportion"].to_numpy(float)
        lo = np.clip(y - sub["ci_low"].to_numpy(float), 0, None)
        hi = np.clip(sub["ci_high"].to_numpy(float) - y, 0, None)
        ax.errorbar(
            x,
            y,
            yerr=np.nan_to_num(np.vstack([lo, hi])),
            fmt=markers[k % len(markers)],
            ms=4,
            capsize=2,
            lw=1,
            label=cond,
            color=f"C{k}",
        )
    ax.set_xticks(np.arange(len(PATTERN_TYPES)))
    ax.set_xticklabels([t.replace("+", "+\n") for t in PATTERN_TYPES], fontsize=8)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("share of maps")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=7, frameon=False)
    return ax


def plot_layer_distribution(layers, ax=None, title: str | None = None, legend: bool = True):
    """Stacked bars of the type proportions per layer (``layers``: ``layer``, ``type``, ``proportion``)."""
    ax = ax or _new_axes()
    table = layers.pivot_table(
        index="layer", columns="type", values="proportion", aggfunc="first"
    ).sort_index()
    x = table.index.to_numpy()
    bottom = np.zeros(len(x))
    for t in PATTERN_TYPES:
        values = np.nan_to_num(table[t].to_numpy(float)) if t in table else np.zeros(len(x))
        ax.bar(
            x,
            values,
            bottom=bottom,
            color=TYPE_COLORS[t],
            label=t,
            width=0.8,
            edgecolor="white",
            linewidth=0.5,
        )
        bottom += values
    ax.set_xticks(x)
    ax.set_xlabel("layer")
    ax.set_ylabel("share of maps")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(
            handles=_type_handles(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False
        )
    return ax


# ------------------------------------------------------------------------------------------------------------
# Heads x layers grids
# ------------------------------------------------------------------------------------------------------------


def majority_grid(majority, n_layers: int, n_heads: int) -> np.ndarray:
    """(L, H) float array of majority-type indices (NaN where a head has no maps), from a frame with columns layer,
    head and majority_type (:func:`attnpatterns.analysis.distributions.majority_frame`)."""
    grid = np.full((n_layers, n_heads), np.nan)
    for row in majority.itertuples(index=False):
        if row.head == LAYER_HEAD:  # a layer-level kind's map (rollout, ...): no head to colour (index -1 would
            continue  # paint the layer's last head)
        grid[row.layer, row.head] = PATTERN_TYPES.index(row.majority_type)
    return grid


def plot_majority_grid(
    grid: np.ndarray,
    survivors: np.ndarray | None = None,
    ax=None,
    title: str | None = None,
    legend: bool = True,
):
    """Heads x layers grid coloured by each head's majority type; super-survivors outlined in black.

    ``grid``: (L, H) float array of indices into PATTERN_TYPES, NaN where a head has no maps (drawn pale
    grey).
    ``survivors``: (L, H) bool. Layer 0 is the top row; ids are the original 0-based (layer, head) ids.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    grid = np.asarray(grid, dtype=float)
    n_layers, n_heads = grid.shape
    ax = ax or _new_axes((max(4.0, 0.35 * n_heads + 2.5), max(3.0, 0.3 * n_layers + 1.2)))
    cmap = ListedColormap([TYPE_COLORS[t] for t in PATTERN_TYPES]).with_extremes(bad=MISSING_COLOR)
    ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(PATTERN_TYPES) - 0.5,
        interpolation="nearest",
        aspect="equal",
    )
    if survivors is not None:
        for layer, head in np.argwhere(np.asarray(survivors, bool)):
            ax.add_patch(
                Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0)
            )
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(np.arange(-0.5, n_heads), minor=True)
    ax.set_yticks(np.arange(-0.5, n_layers), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    if title:
        ax.set_title(title, fontsize=9)
    if legend:
        handles = _type_handles()
        if survivors is not None:
            handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2, label="super-survivor"))
        if np.isnan(grid).any():
            handles.append(Patch(facecolor=MISSING_COLOR, label="no maps (pruned)"))
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


def plot_survival_frequency(frequency: np.ndarray, ax=None, title: str | None = None):
    """Heads x layers heatmap of the fraction of seeds in which each head survived pruning."""
    from matplotlib.patches import Rectangle

    frequency = np.asarray(frequency, dtype=float)
    n_layers, n_heads = frequency.shape
    ax = ax or _new_axes((max(4.0, 0.35 * n_heads + 2.0), max(3.0, 0.3 * n_layers + 1.2)))
    image = ax.imshow(frequency, cmap="Greens", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    for layer, head in np.argwhere(frequency >= 1.0):
        ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0))
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.figure.colorbar(image, ax=ax, label="fraction of seeds kept", shrink=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# ------------------------------------------------------------------------------------------------------------
# Pruning curves
# ------------------------------------------------------------------------------------------------------------


def plot_pruning_curves(
    curves: Mapping[str, Sequence[tuple]],
    ax=None,
    title: str | None = None,
    targets: Mapping[str, float] | None = None,
    xlabel: str = "pruning step",
):
    """Dev score per pruning step, one line per seed.

    ``curves``: label -> [(step, score) or (step, score, passed), ...]; steps with ``passed`` False (below
    the threshold, masks not kept) are drawn as crosses off the line. ``targets``: label -> the score a step
    had to reach, drawn as a dashed line in the seed's colour.
    """
    ax = ax or _new_axes((5, 3.2))
    for k, (label, points) in enumerate(curves.items()):
        pts = [
            (p[0], p[1], p[2] if len(p) > 2 else None)
            for p in points
            if p[0] is not None and p[1] is not None
        ]
        kept = [(x, y) for x, y, passed in pts if passed is not False]
        failed = [(x, y) for x, y, passed in pts if passed is False]
        if kept:
            ax.plot(*zip(*kept), marker="o", ms=3, lw=1, label=str(label), color=f"C{k}")
        if failed:
            ax.plot(*zip(*failed), ls="none", marker="x", ms=5, color=f"C{k}")
        if targets and targets.get(label) is not None:
            ax.axhline(targets[label], color=f"C{k}", ls="--", lw=0.8, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("dev score")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if curves:
        ax.legend(fontsize=7, frameon=False)
    return ax


# ------------------------------------------------------------------------------------------------------------
# Assembling and saving
# ------------------------------------------------------------------------------------------------------------


def task_figures(result, task: str) -> dict:
    """The standard figures of one task of a ``ComparisonResult``: name -> Figure.

    ``distribution``   stacked bars per condition, one panel per map kind (the paper's figure);
    ``intervals``      proportions with bootstrap intervals, one panel per kind;
    ``majority_<kind>`` majority-type grids: full model(s) and, when given, the pruned model's survivors;
    ``layers_<kind>``  type distribution by layer in the full model(s).
    """
    from matplotlib.figure import Figure

    figures = {}
    dist = result.distributions[result.distributions["task"] == task]
    kinds = [k for k in MAP_KINDS if k in set(dist["kind"])]
    if not kinds:
        return figures
    info = result.tasks.get(task, {})
    surv = info.get("survivors", {})
    n_layers, n_heads = int(surv.get("n_layers", 0)), int(surv.get("n_heads", 0))
    mask = np.zeros((n_layers, n_heads), bool)
    for layer, head in surv.get("super_survivor_heads", []):
        mask[layer, head] = True
    n_cond = dist["condition"].nunique()

    fig = Figure(figsize=(2.2 + 1.1 * n_cond * len(kinds), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    for i, (ax, kind) in enumerate(zip(axes, kinds)):
        plot_type_bars(
            dist[dist["kind"] == kind], ax=ax, title=f"{task}: {kind} maps", legend=i == len(kinds) - 1
        )
    figures["distribution"] = fig

    fig = Figure(figsize=(5.2 * len(kinds), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    for i, (ax, kind) in enumerate(zip(axes, kinds)):
        plot_type_intervals(
            dist[dist["kind"] == kind],
            ax=ax,
            title=f"{task}: {kind} maps, 95% intervals over heads"
            if result.config.confidence_level == 0.95
            else f"{task}: {kind} maps",
            legend=i == 0,
        )
    figures["intervals"] = fig


    heads = result.heads[result.heads["task"] == task] if not result.heads.empty else result.heads
    layers = result.layers[result.layers["task"] == task] if not result.layers.empty else result.layers
    for kind in kinds:
        panels = [  # a grid of heads for the per-head kinds only (a layer-level kind has one map per layer)
            (w, g)
            for (w, g) in CONDITIONS
            if kind not in LAYER_KINDS and not heads.empty
            and ((heads["kind"] == kind) & (heads["weights"] == w) & (heads["heads"] == g)).any()
        ]
        if panels and n_layers and n_heads:
            fig = Figure(
                figsize=(max(4.0, 0.32 * n_heads + 1.0) * len(panels) + 1.8, 0.3 * n_layers + 1.6),
                layout="constrained",
            )
            axes = np.atleast_1d(fig.subplots(1, len(panels)))
            for i, (ax, (w, g)) in enumerate(zip(axes, panels)):
                sub = heads[(heads["kind"] == kind) & (heads["weights"] == w) & (heads["heads"] == g)]
                grid = majority_grid(sub, n_layers, n_heads)
                label = "full model" if g == ALL_HEADS else "pruned model (super-survivors only)"
                plot_majority_grid(grid, mask, ax=ax, title=f"{w}, {label}", legend=i == len(panels) - 1)
            fig.suptitle(f"{task}: majority type per head ({kind} maps)", fontsize=10)
            figures[f"majority_{kind}"] = fig
        full_panels = [
            w
            for w in (FINETUNED, PRETRAINED)
            if not layers.empty
            and ((layers["kind"] == kind) & (layers["weights"] == w) & (layers["heads"] == ALL_HEADS)).any()
        ]
        if full_panels:
            fig = Figure(figsize=(5.5 * len(full_panels) + 1.2, 3.4), layout="constrained")
            axes = np.atleast_1d(fig.subplots(1, len(full_panels), sharey=True))
            for i, (ax, w) in enumerate(zip(axes, full_panels)):
                sub = layers[
                    (layers["kind"] == kind) & (layers["weights"] == w) & (layers["heads"] == ALL_HEADS)
                ]
                plot_layer_distribution(
                    sub, ax=ax, title=f"{task}: {w}, all heads ({kind})", legend=i == len(full_panels) - 1
                )
            figures[f"layers_{kind}"] = fig
    return figures


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` (or the given formats); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def figure_png_bytes(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (for embedding in a self-contained report)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
