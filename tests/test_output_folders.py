"""No command writes into a folder it did not make: each refuses before writing anything, byte for byte.

The folders tried: a user's own folder (with a ``manifest.json`` of its own), and an attnpatterns run of another
kind (an extraction run). ``--overwrite`` replaces only attnpatterns runs, never a user's folder.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from attnpatterns.pipeline import PipelineConfig, open_pipeline_folder
from tests.helpers import invoke, save_tiny_inputs


def _snapshot(folder):
    """Every file under ``folder`` with its bytes' hash and mtime: what 'left exactly as it was' means."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    model, texts = save_tiny_inputs(root)
    res = invoke("extract", texts, "-m", model, "-o", root / "extraction", "-q", "--device", "cpu")
    assert res.exit_code == 0, res.output
    user = root / "user"
    user.mkdir()
    (user / "notes.txt").write_text("a user's notes")
    (user / "manifest.json").write_text('{"project": "mine"}')
    masks = root / "masks"
    for seed in range(2):
        (masks / "toy" / f"seed_{seed}").mkdir(parents=True)
        mask = np.ones((2, 4), np.float32)
        mask[seed, 0] = 0
        np.save(masks / "toy" / f"seed_{seed}" / "head_mask.npy", mask)
    return {"root": root, "model": model, "texts": texts, "extraction": root / "extraction", "user": user,
            "masks": masks}


def _commands(p, target):
    """Each writing command aimed at ``target``, with inputs good enough to reach the output check."""
    return {
        "extract": ["extract", p["texts"], "-m", p["model"], "-o", target, "-q", "--device", "cpu"],
        "survivors": ["survivors", p["masks"], "-o", target, "-q", "--no-heatmap"],
        "classify": ["classify", p["extraction"], "-o", target, "-q", "--device", "cpu"],
        "train": ["train", "--data", p["root"] / "no-data-needed-yet", "--kind", "raw", "-o", target, "-q"],
        "evaluate": ["evaluate", "default", p["root"] / "no-data-needed-yet", "--kind", "raw", "-o", target],
        "pipeline": ["pipeline", "-m", p["model"], "-o", target, "-q", "--device", "cpu"],
    }


@pytest.mark.parametrize("command", ["extract", "survivors", "classify", "train", "evaluate", "pipeline"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_folder_is_never_touched(places, command, overwrite):
    before = _snapshot(places["user"])
    args = _commands(places, places["user"])[command] + (["--overwrite"] if overwrite else [])
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert "nothing was written" in res.output and "Choose another --output" in res.output
    assert _snapshot(places["user"]) == before


@pytest.mark.parametrize("command", ["survivors", "classify", "train", "evaluate", "pipeline"])
def test_another_run_is_refused_unless_overwrite(places, command):
    before = _snapshot(places["extraction"])
    res = invoke(*_commands(places, places["extraction"])[command])
    assert res.exit_code == 2, res.output
    assert "holds an extraction run; nothing was written" in res.output and "--overwrite" in res.output
    assert _snapshot(places["extraction"]) == before


def test_survivors_writes_a_manifest_and_reruns_in_place(places, tmp_path):
    out = tmp_path / "surv"
    assert invoke("survivors", places["masks"], "-o", out, "-q", "--no-heatmap").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_type"] == "survivors" and manifest["status"] == "complete"
    before = _snapshot(out)
    assert invoke("survivors", places["masks"], "-o", out, "-q", "--no-heatmap").exit_code == 0
    assert _snapshot(out) == before  # the same survivors: nothing rewritten
    res = invoke("survivors", places["masks"], "-o", out, "-q")  # with a heatmap: another result
    assert res.exit_code == 2 and "a different survivors run" in res.output
    assert invoke("survivors", places["masks"], "-o", out, "-q", "--overwrite").exit_code == 0
    assert (out / "survival_heatmap.png").is_file()


def test_pipeline_with_changed_settings_is_refused_before_writing(places, tmp_path):
    out = tmp_path / "pipe"
    config = PipelineConfig(model=str(places["model"]), device="cpu")
    open_pipeline_folder(config, out).start({"config": config.to_dict()})
    (out / "reviews").mkdir()
    before = _snapshot(out)
    res = invoke("pipeline", "-m", places["model"], "-o", out, "--threshold", "0.8", "-q", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "(threshold: 0.9 -> 0.8)" in res.output and "--overwrite" in res.output  # only what differs
    assert _snapshot(out) == before
