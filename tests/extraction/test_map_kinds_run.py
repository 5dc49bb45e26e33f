"""Layer-level kinds through run folders and the commands: extract, read, verify, show, classify."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.constants import CLASSIFIER_KIND, LAYER_HEAD, LAYER_KINDS
from attnpatterns.data.records import TextExample
from attnpatterns.extraction import ExtractionConfig, RunError, extract_maps, open_run
from tests.helpers import save_tiny_model

runner = CliRunner()
TEXTS = ["A short one.", "Old maps of the harbour show a second pier that no longer exists.", "Rain fell."]


def test_run_folder_holds_one_map_per_layer(tiny, tmp_path):
    mask = np.ones((2, 4), np.float32)
    mask[1] = 0  # layer 1 keeps no head: still one map per layer for the layer-level kinds
    examples = [TextExample(f"s{i}", t) for i, t in enumerate(TEXTS)]
    run = extract_maps(tiny, examples, tmp_path / "run", ExtractionConfig(kinds=("raw", *LAYER_KINDS),
                                                                          batch_size=2), head_mask=mask)
    assert run.heads == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert run.map_heads("rollout") == [(0, LAYER_HEAD), (1, LAYER_HEAD)]
    assert run.n_maps() == 3 * (4 + 2 * 4) and len(run.index()) == run.n_maps()
    assert len(list(run.iter_maps())) == run.n_maps()
    assert run.verify().ok
    for ex in run.examples:
        for kind in LAYER_KINDS:
            for layer in range(2):
                m = run.get_map(ex.example_id, layer, LAYER_HEAD, kind)
                assert m.shape == (ex.n_tokens, ex.n_tokens) and (m >= 0).all()
        np.testing.assert_allclose(run.get_map(ex.example_id, 1, None, "alti").sum(1), 1, atol=3e-3)
        # every head of layer 1 masked: value zeroing sees no mixing there, rollout passes layer 0's through
        assert run.get_map(ex.example_id, 1, -1, "valuezero").max() == 0
        np.testing.assert_allclose(run.get_map(ex.example_id, 1, -1, "rollout"),
                                   run.get_map(ex.example_id, 0, -1, "rollout"), atol=1e-3)
    with pytest.raises(RunError, match="per layer"):
        run.get_map("s0", 0, 2, "rollout")
    # rerunning the same command finds the run complete and undamaged
    again = extract_maps(tiny, examples, tmp_path / "run", ExtractionConfig(kinds=("raw", *LAYER_KINDS),
                                                                            batch_size=2), head_mask=mask)
    assert again.verify().ok and len(again) == 3


def test_extract_show_classify_new_kinds_on_the_command_line(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    texts = tmp_path / "in.txt"
    texts.write_text("The lighthouse keeper wrote a letter every evening.\nIt rained.\tThe streets were wet.\n")
    out = tmp_path / "r"
    res = runner.invoke(app, ["extract", str(texts), "-m", str(model), "-o", str(out), "-q",
                              "--kinds", "raw,normed,rollout,resln,alti,valuezero"])
    assert res.exit_code == 0, res.output
    run = open_run(out)
    assert run.kinds == ("raw", "normed", "rollout", "resln", "alti", "valuezero")
    for kinds in ("raw,rollout,alti", "resln,valuezero"):
        png = tmp_path / f"{kinds}.png"
        res = runner.invoke(app, ["show", str(out), "-l", "1", "--head", "0", "--kinds", kinds, "-o", str(png)])
        assert res.exit_code == 0, res.output
        assert png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["classify", str(out), "-o", str(tmp_path / "c"), "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(tmp_path / "c" / "classifications.csv")
    layer_rows = rows[rows["kind"].isin(LAYER_KINDS)]
    assert set(layer_rows["head"]) == {LAYER_HEAD} and len(layer_rows) == 2 * 2 * 4
    assert len(rows) == run.n_maps()
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    for kind in LAYER_KINDS:  # the manifest says which shipped classifier labelled each kind
        assert manifest["checkpoint"][kind]["kind"] == CLASSIFIER_KIND[kind]


@pytest.mark.slow
def test_extract_new_kinds_on_the_bundled_minilm(tmp_path):
    res = runner.invoke(app, ["extract", "--samples", "single", "--limit", "4",  # the default model: MiniLM
                              "-o", str(tmp_path / "r"), "-q", "--kinds", "raw,normed,rollout,resln,alti"])
    assert res.exit_code == 0, res.output
    run = open_run(tmp_path / "r")
    assert run.map_heads("alti") == [(layer, LAYER_HEAD) for layer in range(6)]
    ex = run.examples[0]
    assert np.allclose(run.get_map(ex.example_id, 5, -1, "rollout").sum(1), 1, atol=3e-3)


def test_value_zeroing_when_the_padded_length_equals_the_hidden_size(tiny, tmp_path):
    """A batch padded to exactly hidden_size tokens (32 for the tiny model) must crop only token axes, never the
    hidden one; each example's scores equal those of a run that extracts it alone (no padding)."""
    examples = [TextExample("long", "word " * 60), TextExample("short", "a short text")]
    config = ExtractionConfig(kinds=("valuezero",), max_length=32, batch_size=2, dtype="float32")
    with pytest.warns(UserWarning, match="truncated"):
        batched = extract_maps(tiny, examples, tmp_path / "batched", config)
    assert batched.example("long").n_tokens == 32 == tiny.model.config.hidden_size
    with pytest.warns(UserWarning, match="truncated"):
        alone = extract_maps(tiny, examples, tmp_path / "alone",
                             ExtractionConfig(**{**config.to_dict(), "batch_size": 1}))
    for ex in examples:
        np.testing.assert_allclose(batched.get_map(ex.example_id, 1, -1, "valuezero"),
                                   alone.get_map(ex.example_id, 1, -1, "valuezero"), rtol=1e-4, atol=1e-6)
