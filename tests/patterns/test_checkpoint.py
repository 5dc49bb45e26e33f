"""Checkpoints: round trip, no pickle, clear errors for wrong kind and damaged files, shipped defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnpatterns.patterns import load_classifier
from attnpatterns.patterns.checkpoint import (
    CONFIG_FILE,
    REBUILD_COMMAND,
    WEIGHTS_FILE,
    CheckpointError,
    NoDefaultCheckpointError,
    install_default_checkpoint,
    load_checkpoint,
    load_default_checkpoint,
    save_checkpoint,
)
from attnpatterns.patterns.classifier import KindMismatchError


@pytest.fixture
def saved(tmp_path, raw_classifier):
    return save_checkpoint(raw_classifier, tmp_path / "ckpt")


def test_round_trip_gives_the_same_predictions(saved, raw_classifier, raw_set):
    loaded = load_checkpoint(saved)
    assert loaded.kind == "raw" and loaded.preprocess == raw_classifier.preprocess
    assert np.allclose(loaded.predict_proba(raw_set.arrays), raw_classifier.predict_proba(raw_set.arrays))
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["kind"] == "raw" and config["label_names"][2] == "vertical+diagonal"
    assert config["training"]["data"]["data_sha256"] == raw_set.data_hash()
    assert "torch" in config["versions"]
    # a run folder or either file resolves to the checkpoint too
    assert load_checkpoint(saved / WEIGHTS_FILE).kind == "raw"
    assert load_checkpoint(saved / CONFIG_FILE).kind == "raw"


def test_weights_are_safetensors_not_pickle(saved):
    head = (saved / WEIGHTS_FILE).read_bytes()[:8]
    header_len = int.from_bytes(head, "little")
    header = json.loads((saved / WEIGHTS_FILE).read_bytes()[8 : 8 + header_len])
    assert header["__metadata__"]["kind"] == "raw"


def test_wrong_kind_is_refused(saved, raw_classifier, normed_set):
    with pytest.raises(KindMismatchError, match="trained on raw maps and cannot classify normed"):
        load_checkpoint(saved, kind="normed")
    with pytest.raises(KindMismatchError, match="normed"):
        raw_classifier.predict_proba(normed_set.arrays, kind="normed")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / WEIGHTS_FILE).write_bytes((p / WEIGHTS_FILE).read_bytes()[:100]), "corrupt"),
        (lambda p: (p / WEIGHTS_FILE).write_bytes(b"not a safetensors file at all"), "corrupt"),
        (lambda p: (p / CONFIG_FILE).write_text("{ truncated"), "not valid JSON"),
        (lambda p: (p / CONFIG_FILE).write_text(json.dumps({"hello": 1})), "not a pattern-classifier"),
        (lambda p: (p / WEIGHTS_FILE).unlink(), "no weights file"),
    ],
)
def test_damaged_checkpoints_are_refused(saved, damage, message):
    damage(saved)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


def test_altered_weights_are_detected_even_when_they_parse(saved):
    data = bytearray((saved / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor's data
    (saved / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(saved)


def test_weights_that_do_not_fit_the_architecture(saved):
    config = json.loads((saved / CONFIG_FILE).read_text())
    config["model"]["channels"] = [4, 4, 4, 4]
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(saved)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_checkpoint(tmp_path)


def test_missing_default_says_how_to_build_it(default_dir):
    with pytest.raises(NoDefaultCheckpointError) as err:
        load_default_checkpoint("normed")
    assert REBUILD_COMMAND in str(err.value) and "attnpatterns train --kind normed" in str(err.value)
    with pytest.raises(NoDefaultCheckpointError):
        load_classifier(kind="raw")


def test_install_default(default_dir, saved, raw_set):
    target = install_default_checkpoint(saved)
    assert target == default_dir / "raw"
    clf = load_classifier(kind="raw")
    assert clf.predict(raw_set.arrays[:3]) == load_checkpoint(saved).predict(raw_set.arrays[:3])
    with pytest.raises(NoDefaultCheckpointError):
        load_classifier(kind="normed")
    # the test-set scores of the checkpoint it replaces go with it
    (target / "testset").mkdir()
    (target / "testset" / "report.txt").write_text("scores of the previous checkpoint")
    install_default_checkpoint(saved)
    assert not (target / "testset").exists()


@pytest.mark.parametrize("kind", ["raw", "normed"])
def test_shipped_defaults_load_and_describe_their_training(kind, raw_set):
    clf = load_default_checkpoint(kind)
    assert clf.kind == kind
    training = clf.metadata["training"]
    assert training["data"]["kind"] == kind and training["data"]["n_maps"] >= 600
    assert 0.0 < training["cv_macro_f1"] <= 1.0
    probs = clf.predict_proba(raw_set.arrays[:4])
    assert probs.shape == (4, 5) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(KindMismatchError):
        load_classifier(kind="normed" if kind == "raw" else "raw").check_kind(kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["raw", "normed"])
def test_shipped_defaults_carry_their_test_set_scores(kind):
    """rebuild_defaults scores every shipped checkpoint on annotations/testset; the report must be this checkpoint's:
    scoring the shipped checkpoint again on the test set gives the recorded kappa and confusion."""
    from pathlib import Path

    from attnpatterns.patterns import evaluate_classifier
    from attnpatterns.patterns.checkpoint import TESTSET_REPORT_DIR, default_checkpoint_path
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP

    folder = default_checkpoint_path(kind) / TESTSET_REPORT_DIR
    recorded = json.loads((folder / "report.json").read_text())
    assert json.loads((folder / "manifest.json").read_text())["status"] == "complete"
    testset = Path(__file__).resolve().parents[2] / "annotations" / "testset"
    dataset = load_labeled(testset, "auto", kind, DEFAULT_LABEL_MAP, None)
    again = evaluate_classifier(load_default_checkpoint(kind), dataset).to_dict()
    assert recorded["n_maps"] == again["n_maps"] >= 150
    assert recorded["cohen_kappa"] == pytest.approx(again["cohen_kappa"], abs=1e-9)
    assert recorded["confusion_matrix"] == again["confusion_matrix"]


@pytest.mark.parametrize("argv, expected", [([], ["raw", "normed"]), (["--kind", "normed"], ["normed"]),
                                            (["--kind", "raw", "--kind", "normed"], ["raw", "normed"])])
def test_rebuild_defaults_rebuilds_the_kinds_asked_for(monkeypatch, argv, expected):
    """``--kind`` limits the rebuild (train, install, score on the test set) to those kinds, in the order given."""
    import attnpatterns.patterns.checkpoint as checkpoint
    import attnpatterns.patterns.evaluate as evaluate
    import attnpatterns.patterns.io as io
    import attnpatterns.patterns.train as train
    from attnpatterns.patterns import rebuild_defaults

    trained, scored = [], []

    class Report:
        title = ""

        def to_text(self):
            return ""

    monkeypatch.setattr(train, "train_run", lambda out, kind, **kw: trained.append(kind))
    monkeypatch.setattr(checkpoint, "load_default_checkpoint", lambda kind, device=None: type(
        "C", (), {"metadata": {}, "kind": kind})())
    monkeypatch.setattr(evaluate, "open_evaluation_folder", lambda *a, **kw: type("F", (), {"path": "x"})())
    monkeypatch.setattr(io, "load_labeled", lambda root, fmt, kind, label_map: type("D", (), {"source": root})())
    monkeypatch.setattr(evaluate, "evaluate_classifier", lambda clf, data: Report())
    monkeypatch.setattr(evaluate, "save_evaluation", lambda report, folder, name, root, kind: scored.append(kind))
    rebuild_defaults.main(argv)
    assert trained == expected and scored == expected
    trained.clear(), scored.clear()
    rebuild_defaults.main([*argv, "--score-only"])  # the reports again, no training
    assert trained == [] and scored == expected
    with pytest.raises(SystemExit):
        rebuild_defaults.main(["--kind", "rollout"])  # layer-level kinds borrow the head classifiers


def test_rebuild_report_titles_name_the_checkpoint_relative_to_the_repository(tmp_path, monkeypatch):
    from attnpatterns.patterns.evaluate import shown_path

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "attnpatterns" / "patterns" / "checkpoints" / "normed"
    assert shown_path(str(inside)) == "attnpatterns/patterns/checkpoints/normed"
    outside = tmp_path.parent / "elsewhere" / "ckpt"
    assert shown_path(str(outside)) == str(outside) and shown_path(None) is None


def test_evaluation_titles_name_the_checkpoint_relative_to_the_working_directory(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from attnpatterns.patterns.evaluate import report_title

    monkeypatch.chdir(tmp_path)
    inside = SimpleNamespace(metadata={"path": str(tmp_path / "runs" / "mine" / "checkpoint")})
    assert report_title(inside, "maps/", "raw") == "runs/mine/checkpoint on maps/ (raw maps)"
    unnamed = SimpleNamespace(metadata={})
    assert report_title(unnamed, "maps/", "normed", fallback="default") == "default on maps/ (normed maps)"
