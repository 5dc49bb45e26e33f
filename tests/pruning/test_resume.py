"""Resuming structured pruning: the schedule from every saved state (synthetic scores), and a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attnpatterns.pruning.checkpoint import (
    PRUNING_STATE_FILE,
    discard_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from attnpatterns.pruning.structured import ScheduleState, StructuredConfig, run_schedule
from attnpatterns.runfolder import read_manifest
from tests.pruning.conftest import make_task

L, H = 4, 10
ROOT = Path(__file__).resolve().parents[2]


def _assess_counting():
    """Scores that fail now and then, and importance that depends on the masks (so it must be the saved one)."""
    calls = []

    def assess(head_mask, mlp_mask, target=None):
        heads, mlps = int(head_mask.sum()), int(mlp_mask.sum())
        calls.append((heads, mlps))
        score = 1.0 if heads >= 24 and mlps >= 2 else 0.95 if heads >= 18 else 0.5
        seed = heads * 7 + mlps
        head_imp = np.sin(np.arange(L * H) * (seed + 1.3)).reshape(L, H)
        mlp_imp = np.cos(np.arange(L) * (seed + 0.7))
        return score, head_imp, mlp_imp

    return assess, calls


def _without_seconds(steps):
    return [{k: v for k, v in step.items() if k != "seconds"} for step in steps]


def _same_result(a, b):
    assert _without_seconds(a.steps) == _without_seconds(b.steps)
    assert np.array_equal(a.head_mask, b.head_mask) and np.array_equal(a.mlp_mask, b.mlp_mask)
    assert np.array_equal(a.head_importance, b.head_importance)
    assert np.array_equal(a.mlp_importance, b.mlp_importance)
    assert (a.full_score, a.final_score) == (b.full_score, b.final_score)


def test_schedule_resumed_from_any_saved_step_ends_like_an_uninterrupted_run(tmp_path):
    config = StructuredConfig()
    assess, calls = _assess_counting()
    states = []
    full = run_schedule(assess, L, H, config, "accuracy", checkpoint=states.append)
    assert len(states) == len(full.steps) == len(calls)  # one state per finished step
    assert any(not s["passed"] for s in full.steps)  # failing steps (phase ends) are among the kill points
    path = tmp_path / PRUNING_STATE_FILE
    for killed_after, state in enumerate(states):
        save_checkpoint(path, "fp", *state.to_checkpoint())  # through the file, as after a kill
        saved = ScheduleState.from_checkpoint(*load_checkpoint(path, "fp"))
        assess, calls = _assess_counting()
        reported, later = [], []
        resumed = run_schedule(assess, L, H, config, "accuracy", reported.append, saved, later.append)
        _same_result(resumed, full)
        # only the steps after the saved one are assessed, reported and saved again
        assert len(calls) == len(reported) == len(later) == len(full.steps) - killed_after - 1
        assert [s["step"] for s in reported] == list(range(killed_after + 1, len(full.steps)))
        assert resumed.steps[: killed_after + 1] == full.steps[: killed_after + 1]  # seconds of old steps kept


def test_a_state_of_another_run_or_a_damaged_one_is_ignored(tmp_path):
    assess, _ = _assess_counting()
    states = []
    run_schedule(assess, L, H, StructuredConfig(), checkpoint=states.append)
    path = tmp_path / PRUNING_STATE_FILE
    save_checkpoint(path, "fp", *states[2].to_checkpoint())
    assert load_checkpoint(path, "other") is None
    assert load_checkpoint(tmp_path / "missing.npz", "fp") is None
    path.write_bytes(path.read_bytes()[:100])  # what no atomic write leaves, but a failing disk might
    assert load_checkpoint(path, "fp") is None
    (tmp_path / f".{PRUNING_STATE_FILE}.abc.tmp").write_bytes(b"half")  # a kill mid-write leaves this
    discard_checkpoint(tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="does not fit"):
        run_schedule(assess, L + 1, H, StructuredConfig(), resume=states[2])


def test_magnitude_resumed_from_any_saved_step_ends_like_an_uninterrupted_run(tmp_path):
    from transformers import AutoTokenizer

    from attnpatterns.pruning.magnitude import MagnitudeConfig, MagnitudeState, magnitude_prune
    from tests.helpers import bundled_model_path, tiny_bert

    model, tokenizer = tiny_bert(classification=True), AutoTokenizer.from_pretrained(bundled_model_path())
    task, config = make_task(n_train=4, n_dev=8), MagnitudeConfig(max_steps=3, max_length=16, amount=0.3)
    states = []
    full = magnitude_prune(model, tokenizer, task, config, checkpoint=states.append)
    assert len(states) == len(full.steps) == 4
    path = tmp_path / PRUNING_STATE_FILE
    for killed_after, state in enumerate(states):
        save_checkpoint(path, "fp", *state.to_checkpoint())
        saved = MagnitudeState.from_checkpoint(*load_checkpoint(path, "fp"))
        reported = []
        resumed = magnitude_prune(model, tokenizer, task, config, reported.append, saved)
        assert _without_seconds(resumed.steps) == _without_seconds(full.steps)
        assert resumed.steps[: killed_after + 1] == full.steps[: killed_after + 1]
        assert resumed.subnetwork.digest() == full.subnetwork.digest() and resumed.final_score == full.final_score
        assert [s["step"] for s in reported] == list(range(killed_after + 1, len(full.steps)))


def _saved_state(out: Path):
    """The state in run folder ``out`` as ``(meta, arrays)``, or None while there is none."""
    manifest = read_manifest(out)
    return None if manifest is None else load_checkpoint(out / PRUNING_STATE_FILE, manifest["fingerprint"])


def test_prune_killed_midway_resumes_from_its_last_step(tmp_path):
    from tests.helpers import save_tiny_model
    from tests.pruning.slow_pruning import prune

    # larger initial weights: the random classifier's accuracy then depends on its masks (some steps fail)
    tiny_classifier_path = save_tiny_model(tmp_path / "tiny-cls", classification=True, initializer_range=0.5)

    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.pruning.slow_pruning", str(tiny_classifier_path),
                             str(out), "1"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    fresh = prune(tiny_classifier_path, tmp_path / "fresh")  # while the child starts
    try:
        deadline = time.monotonic() + 120
        while len((_saved_state(out) or ({"steps": []},))[0]["steps"]) < 2:  # steps 0 (full) and 1 saved; it now sleeps
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the pruning subprocess never saved its first step"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = _saved_state(out)
    assert read_manifest(out)["status"] == "running"

    reported = []
    resumed = prune(tiny_classifier_path, out, reported.append)
    _same_result(resumed, fresh)
    assert len(fresh.steps) > 3  # the kill landed mid-run
    assert 0 < fresh.head_mask.sum() < fresh.head_mask.size and not all(s["passed"] for s in fresh.steps)
    # the two saved steps were not computed again: only the rest was reported, and their timings are the old ones
    assert [s["step"] for s in reported] == list(range(2, len(fresh.steps)))
    assert resumed.steps[:2] == before[0]["steps"]
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
    assert not (out / PRUNING_STATE_FILE).exists() and not list(out.glob(".*.tmp"))
    assert json.loads((out / "pruning_log.json").read_text())["steps"] == resumed.steps
    # a complete run is reused as it is
    again = []
    assert prune(tiny_classifier_path, out, again.append).steps == resumed.steps and again == []
