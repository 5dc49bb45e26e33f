"""Execute notebooks/explore.ipynb headless on a tiny model with classifiers trained on synthetic maps."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from attnpatterns.patterns.checkpoint import save_checkpoint
from attnpatterns.patterns.train import TrainConfig, train_classifier
from tests.helpers import save_tiny_model
from tests.patterns.synthetic import synthetic_set

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


@pytest.mark.slow
def test_explore_notebook_runs_end_to_end(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    checkpoints = {}
    for kind in ("raw", "normed"):
        result = train_classifier(synthetic_set(10, kind=kind, max_tokens=24, maps_per_text=1), kind=kind,
                                  config=TrainConfig(max_epochs=3, min_epochs=1), cross_validate=False)
        checkpoints[kind] = str(save_checkpoint(result.classifier, tmp_path / f"clf-{kind}"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join([
        f"MODEL = {str(model)!r}", f"OUT = {str(tmp_path / 'out')!r}",
        f"RAW_CHECKPOINT = {checkpoints['raw']!r}", f"NORMED_CHECKPOINT = {checkpoints['normed']!r}",
        "TASK = 'entail'", "SEEDS = 2",
        "QUICK = dict(epochs=1, max_train_examples=32, prune_dev_examples=24, importance_examples=16, max_length=32)",
    ])
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "out" / "pipeline" / "report.html").is_file()
    assert (tmp_path / "out" / "maps" / "manifest.json").is_file()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "super-survivor heads" in printed
