"""Comparison figures: functions take data and an optional Axes, return it, and save as PNG and SVG."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.plotting.compare import (
    plot_layer_distribution,
    plot_majority_grid,
    plot_pruning_curves,
    plot_survival_frequency,
    plot_type_bars,
    plot_type_intervals,
    save_figure,
)


def _dist():
    rows = []
    for cond, het in (("fine-tuned, all heads", 0.2), ("fine-tuned, super-survivors", 0.5)):
        for t in PATTERN_TYPES:
            p = het if t == "heterogeneous" else (1 - het) / 4
            rows.append(dict(condition=cond, type=t, proportion=p, ci_low=p - 0.05, ci_high=p + 0.05))
    return pd.DataFrame(rows)


def test_plots_draw_on_the_given_axes():
    ax = Figure().subplots()
    assert plot_type_bars(_dist(), ax=ax) is ax
    # 5 types x 2 conditions stacked bars; each condition's bar sums to 1.
    heights = np.array([p.get_height() for p in ax.patches]).reshape(5, 2)
    np.testing.assert_allclose(heights.sum(axis=0), 1.0)
    ax2 = Figure().subplots()
    assert plot_type_intervals(_dist(), ax=ax2) is ax2
    layers = pd.DataFrame(
        [dict(layer=layer, type=t, proportion=0.2) for layer in range(3) for t in PATTERN_TYPES]
    )
    assert plot_layer_distribution(layers).figure is not None


def test_majority_grid_outlines_exactly_the_survivors():
    grid = np.random.default_rng(0).integers(0, 5, (4, 6)).astype(float)
    grid[0, 0] = np.nan
    survivors = np.zeros((4, 6), bool)
    survivors[[0, 2, 3], [1, 5, 2]] = True
    ax = plot_majority_grid(grid, survivors)
    outlines = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(outlines) == 3
    assert {(int(p.get_y() + 0.5), int(p.get_x() + 0.5)) for p in outlines} == {(0, 1), (2, 5), (3, 2)}


def test_survival_and_pruning_curves_and_saving(tmp_path):
    freq = np.full((2, 3), 0.5)
    freq[1, 2] = 1.0
    ax = plot_survival_frequency(freq)
    paths = save_figure(ax.figure, tmp_path / "sub" / "survival")
    assert [p.name for p in paths] == ["survival.png", "survival.svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:500]
    curves = {"seed 0": [(0, 0.9), (1, 0.85), (2, None)], "seed 1": [(0, 0.88, True), (1, 0.7, False)]}
    ax = plot_pruning_curves(curves, targets={"seed 0": 0.81, "seed 1": None})
    # seed 0: one line; seed 1: one kept point and one cross for the step that was not kept; one target line.
    assert len(ax.lines) == 4


def test_layer_level_maps_colour_no_head_and_get_no_head_grid():
    """A layer-level kind's rows carry head -1; as an index that would paint each layer's last head."""
    import pandas as pd

    from attnpatterns.analysis.compare import CompareConfig, TaskInputs, compare
    from attnpatterns.plotting.compare import majority_grid, task_figures
    from tests.analysis.builders import SURVIVORS, make_survivors, make_table, survivor_mask, table_frame

    rows = pd.DataFrame({"layer": [0, 1, 1], "head": [2, -1, 0], "majority_type": ["block", "diagonal", "vertical"]})
    grid = majority_grid(rows, 2, 3)
    assert grid[0, 2] == PATTERN_TYPES.index("block") and grid[1, 0] == PATTERN_TYPES.index("vertical")
    assert np.isnan(grid[1, 2]) and np.isnan(grid[1, 1])
    def with_rollout(frame):  # one rollout map per layer and example, under head -1
        layer_rows = frame.drop_duplicates(["example_id", "layer"]).assign(kind="rollout", head=-1)
        return pd.concat([frame, layer_rows], ignore_index=True)

    full = make_table(with_rollout(table_frame("vertical")))
    pruned = make_table(with_rollout(table_frame("vertical", heads=list(SURVIVORS))), head_mask=survivor_mask())
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)],
                     CompareConfig(n_permutations=20, n_bootstrap=10))
    figures = task_figures(result, "toy")
    assert "majority_raw" in figures and "majority_rollout" not in figures
