"""The extract/show commands end to end on a tiny model, and their clear errors."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.extraction import open_run
from tests.helpers import save_tiny_model

runner = CliRunner()


def _input(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("The lighthouse keeper wrote a letter every evening.\nIt rained.\tThe streets were wet.\n")
    return f


def test_extract_full_and_masked_then_show(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    res = runner.invoke(app, ["extract", str(_input(tmp_path)), "-m", str(model), "-o", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 0, res.output
    run = open_run(tmp_path / "r")
    assert len(run) == 2 and run.kinds == ("raw", "normed") and len(run.heads) == 8
    mask = np.ones((2, 4), np.float32)
    mask[0, 2] = 0
    np.save(tmp_path / "head_mask.npy", mask)
    res = runner.invoke(app, ["extract", str(_input(tmp_path)), "-m", str(model), "-o", str(tmp_path / "m"),
                              "--head-mask", str(tmp_path), "--kinds", "normed", "--dtype", "float32", "-q"])
    assert res.exit_code == 0, res.output
    masked = open_run(tmp_path / "m")
    assert (0, 2) not in masked.heads and masked.kinds == ("normed",)
    res = runner.invoke(app, ["show", str(tmp_path / "r"), "-e", "1", "-l", "1", "--head", "0", "--head", "3",
                              "-o", str(tmp_path / "grid.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_extract_errors_are_clear(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    np.save(tmp_path / "head_mask.npy", np.ones((12, 12), np.float32))
    res = runner.invoke(app, ["extract", str(_input(tmp_path)), "-m", str(model), "-o", str(tmp_path / "r"),
                              "--head-mask", str(tmp_path / "head_mask.npy"), "-q"])
    assert res.exit_code == 2 and "2 layers x 4 heads" in res.output
    res = runner.invoke(app, ["extract", str(_input(tmp_path)), "--kinds", "raw,attn"])
    assert res.exit_code != 0 and "choose from raw, normed" in res.output
    (tmp_path / "empty.txt").write_text("")
    res = runner.invoke(app, ["extract", str(tmp_path / "empty.txt"), "-m", str(model), "-o", str(tmp_path / "e")])
    assert res.exit_code == 2 and "empty" in res.output
