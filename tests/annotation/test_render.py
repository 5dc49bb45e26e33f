"""Rendering: per-map colour scaling, [CLS]/[SEP] marks, segment lines, token labels, numbered sheets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attnpatterns.annotation.render import (  # noqa: E402
    SPECIAL_COLOUR, SheetCell, render_map, render_sheet, segment_boundaries,
)

from .conftest import pattern_array  # noqa: E402


def test_render_map_marks_specials_and_segments():
    tokens = ["[CLS]", "a", "b", "[SEP]", "c", "[SEP]"]
    ax = render_map(pattern_array("block", 6) * 0.01, tokens, [0, 0, 0, 0, 1, 1])
    image = ax.get_images()[0]
    assert image.get_clim()[1] == np.float32(pattern_array("block", 6).max() * 0.01)  # per-map scaling
    labels = ax.get_xticklabels()
    assert [lab.get_text() for lab in labels] == tokens
    assert labels[0].get_color() == SPECIAL_COLOUR and labels[1].get_color() != SPECIAL_COLOUR
    assert len(ax.get_lines()) == 2  # one horizontal + one vertical boundary
    assert segment_boundaries([0, 0, 0, 0, 1, 1]) == [4]
    plt.close(ax.figure)


def test_long_maps_label_only_special_tokens():
    tokens = ["[CLS]"] + [f"w{i}" for i in range(40)] + ["[SEP]"]
    ax = render_map(np.eye(42), tokens)
    assert [lab.get_text() for lab in ax.get_yticklabels()] == ["[CLS]", "[SEP]"]
    plt.close(ax.figure)


def test_sheet_has_numbered_cells():
    cells = [SheetCell(pattern_array("vertical", 8, i), ["[CLS]"] + ["x"] * 6 + ["[SEP]"], number=i + 1,
                       caption="raw · 8 tok") for i in range(6)]
    fig = render_sheet(cells, ncols=4, title="sheet-001")
    axes = fig.get_axes()
    assert len(axes) == 8  # 2 rows x 4, last two blank
    assert [ax._left_title.get_text() for ax in axes[:6]] == ["1", "2", "3", "4", "5", "6"]
    assert axes[0]._right_title.get_text() == "raw · 8 tok"
    assert fig.get_size_inches()[0] >= 12  # cells are large enough to judge
    plt.close(fig)


def test_guideline_example_spec_points_at_builtin_samples():
    """The guideline's example maps must exist in a run of the built-in samples on the bundled MiniLM (6 x 12)."""
    from pathlib import Path

    from attnpatterns.annotation.guideline import figure_file_name, read_spec
    from attnpatterns.data.sources import builtin_samples

    root = Path(__file__).resolve().parents[2] / "annotations"
    spec = read_spec(root / "figures" / "examples.json")
    ids = {e.example_id for e in builtin_samples("both")}
    guideline = (root / "GUIDELINE.md").read_text()
    for name, fig in spec["figures"].items():
        assert f"figures/{figure_file_name(name)}" in guideline
        assert (root / "figures" / figure_file_name(name)).is_file()
        for m in fig["maps"]:
            assert m["example_id"] in ids and 0 <= m["layer"] < 6 and 0 <= m["head"] < 12
            assert m["kind"] in ("raw", "normed")
