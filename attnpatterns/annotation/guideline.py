"""The example pictures of ``annotations/GUIDELINE.md``: chosen maps of an extraction run, drawn as sheets.

The choice lives in a small JSON spec (``annotations/figures/examples.json``) so the pictures can be regenerated
from a fresh extraction run with one command::

    {"run": "how the run was made (a command)",
     "figures": {"vertical": {"ncols": 4, "maps": [{"example_id": "s012", "layer": 0, "head": 3, "kind": "raw"},
                                                   ...]},
                 ...}}

Each figure is saved as ``<name>.png`` with ``+`` written as ``-`` (``vertical+diagonal`` -> ``vertical-diagonal.png``).
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
    return written


def read_spec(path: str | Path) -> dict:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec.get("figures"), dict):
        raise ValueError(f"{path} has no 'figures' object; see attnpatterns.annotation.guideline for the format")
    return spec
