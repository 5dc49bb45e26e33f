"""Execute notebooks/annotate.ipynb headless against a tiny run, click buttons, and check labels.csv.

One kernel start for the whole module (it is the slow part).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from attnpatterns.annotation.corpus import RETRACTED, effective_labels, read_labels, read_map_index

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "annotate.ipynb"

CLICKS = """
first = session.current_id
buttons["vertical"].click()
second = session.current_id
buttons["diagonal"].click()
undo_button.click()
assert session.current_id == second, (session.current_id, second)
assert second in info.value and "suggestion:" in info.value
assert image.value[:4] == b"\\x89PNG"  # the current map is drawn
skip_button.click()
print("FIRST", first)
print("SECOND", second)
print("PROGRESS", session.progress())
"""


def _parameter_cell(nb):
    return next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


def test_notebook_labels_undoes_and_saves(tiny_runs, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    corpus = tmp_path / "corpus"
    _parameter_cell(nb).source = "\n".join([
        f"CORPUS = {str(corpus)!r}", "ANNOTATOR = 'nb-test'", f"RUN = {str(tiny_runs[0])!r}",
        "MAPS_FOLDER = None", "PER_KIND = 4", "KIND = 'raw'", "PASS = 'first'", "ORDER = 'uncertain'",
        "SUGGEST = 'heuristic'", "SEED = 0",
    ])
    nb.cells.append(nbformat.v4.new_code_cell(CLICKS))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    first = text.split("FIRST ")[1].split()[0]
    second = text.split("SECOND ")[1].split()[0]
    assert len(read_map_index(corpus)) == 8  # 4 raw + 4 normed sampled from the run
    rows = read_labels(corpus)
    assert [(r.map_id, r.label, r.annotator) for r in rows] == [
        (first, "vertical", "nb-test"), (second, "diagonal", "nb-test"), (second, RETRACTED, "nb-test"),
    ]
    assert "suggested" in rows[0].note and "uncertain" in rows[0].method
    assert effective_labels(corpus) == {first: "vertical"}
    assert "PROGRESS 1/4 labelled" in text

