"""The example pictures of ``annotations/GUIDELINE.md``: chosen maps of an extraction run, drawn as sheets.

The choice lives in a small JSON spec (``annotations/figures/examples.json``) so the pictures can be regenerated
from a fresh extraction run with one command::

    {"run": "how the run was made (a command)",
     "figures": {"vertical": {"ncols": 4, "maps": [{"example_id": "s012", "layer": 0, "head": 3, "kind": "raw"},
                                                   ...]},
                 ...}}

Each figure is saved as ``<name>.png`` with ``+`` written as ``-`` (``vertical+diagonal`` -> ``vertical-diagonal.png``),
and ``colour-scale.png`` names the colours of the colour map at the levels the guideline's rules use.
"""

from __future__ import annotations

import json
from pathlib import Path

from attnpatterns.annotation.render import SheetCell, render_sheet

SPEC_FILE = "examples.json"


def figure_file_name(name: str) -> str:
    return name.replace("+", "-") + ".png"


def example_cells(run, maps: list[dict]) -> list[SheetCell]:
    """Sheet cells (lettered a, b, c, ...) for the spec's maps of one figure, read from ``run``."""
    cells = []
    for i, spec in enumerate(maps):
        ex = run.example(spec["example_id"])
        array = run.get_map(spec["example_id"], int(spec["layer"]), int(spec["head"]), spec["kind"])
        caption = f"{spec['kind']} · L{spec['layer']}H{spec['head']} · {spec['example_id']}"
        cells.append(SheetCell(array, ex.tokens, ex.segment_ids, number=chr(ord("a") + i), caption=caption))
    return cells


def render_guideline_figures(run, spec: dict, out_dir: str | Path) -> list[Path]:
    """Draw every figure of ``spec`` from ``run`` into ``out_dir``; return the files written."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig_spec in spec["figures"].items():
        fig = render_sheet(example_cells(run, fig_spec["maps"]), ncols=int(fig_spec.get("ncols", 4)),
                           cell_inches=float(fig_spec.get("cell_inches", 3.0)))
        path = out_dir / figure_file_name(name)
        fig.savefig(path, dpi=int(fig_spec.get("dpi", 80)))
        plt.close(fig)
        written.append(path)
    written.append(render_colour_scale(out_dir / COLOUR_SCALE_FILE))
    return written


#: File name of the colour-scale figure that names the colours the guideline's rules use.
COLOUR_SCALE_FILE = "colour-scale.png"
#: (level, name) pairs drawn on the colour scale; the levels are fractions of the map's maximum.
COLOUR_NAMES = (
    (0.0, "background\n(dark purple)"), (0.1, "dark violet\n= visible"), (0.2, "indigo blue"),
    (0.3, "steel blue\n= lit"), (0.5, "teal"), (0.7, "green"), (0.9, "yellow-green"),
)


def render_colour_scale(path: str | Path, cmap: str | None = None, dpi: int = 80) -> Path:
    """Draw the sheets' colour map from 0 to the map maximum with a swatch and a name at each level of
    :data:`COLOUR_NAMES`, so that annotators can match the guideline's colour words to the pictures."""
    import matplotlib.pyplot as plt
    import numpy as np

    from attnpatterns.annotation.render import CMAP

    colours = plt.get_cmap(cmap or CMAP)
    fig, (bar, swatches) = plt.subplots(2, 1, figsize=(9.0, 2.6), gridspec_kw={"height_ratios": [1, 1.4]})
    bar.imshow(np.linspace(0, 1, 256)[None, :], cmap=colours, aspect="auto", extent=(0, 1, 0, 1))
    bar.set_yticks([])
    bar.set_xticks([level for level, _ in COLOUR_NAMES] + [1.0])
    bar.set_xticklabels([f"{level:g}" for level, _ in COLOUR_NAMES] + ["1 (map max)"], fontsize=8)
    bar.set_title("cell value as a fraction of the map's maximum (colours are scaled per map)", fontsize=9)
    swatches.set_xlim(0, len(COLOUR_NAMES))
    swatches.set_ylim(0, 1)
    swatches.axis("off")
    for i, (level, name) in enumerate(COLOUR_NAMES):
        swatches.add_patch(plt.Rectangle((i + 0.15, 0.45), 0.7, 0.5, color=colours(level)))
        swatches.text(i + 0.5, 0.38, f"{level:g}: {name}", ha="center", va="top", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def read_spec(path: str | Path) -> dict:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec.get("figures"), dict):
        raise ValueError(f"{path} has no 'figures' object; see attnpatterns.annotation.guideline for the format")
    return spec
