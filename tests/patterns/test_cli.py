"""train / evaluate / classify through the command line, on synthetic .npy folders and a tiny extraction run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.constants import MANIFEST_FILE
from attnpatterns.patterns.checkpoint import REBUILD_COMMAND, load_checkpoint, save_checkpoint
from attnpatterns.patterns.classify import CLASSIFICATION_COLUMNS, CLASSIFICATIONS_FILE, HEAD_SUMMARY_FILE
from attnpatterns.patterns.preprocess import DEFAULT_PREPROCESS, PreprocessConfig
from tests.patterns.conftest import save_npy_folder
from tests.patterns.test_classify import tiny_run  # noqa: F401  (module-scoped fixture)

runner = CliRunner()

ORIGINAL = {"vertical": "multiple_vertical", "diagonal": "diagonal", "vertical+diagonal": "Vertical + Diagonal",
            "block": "Block", "heterogeneous": "other"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def tsv_folder(tmp_path, normed_set):
    folder = save_npy_folder(tmp_path / "normed", normed_set, padded_to=40)
    lines = [f"{n}\t{ORIGINAL[lab]}" for n, lab in zip(normed_set.names, normed_set.labels)]
    (folder / "labels.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_train_then_evaluate_on_npy_tsv(tsv_folder, tmp_path, default_dir):
    out = tmp_path / "run"
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "--folds", "2", "--max-epochs", "12",
                    "--group-pattern", r"(\d)$", "-o", out, "--install-default", "--quiet")
    assert result.exit_code == 0, result.output
    for name in ("report.json", "report.txt", "confusion_matrix.png", "cv_predictions.csv", "training.json",
                 MANIFEST_FILE, "checkpoint/model.safetensors", "checkpoint/classifier.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report["per_class"]) == set(ORIGINAL) and 0.0 <= report["macro_f1"] <= 1.0
    assert (default_dir / "normed" / "classifier.json").is_file()
    assert (default_dir / "normed" / "report.txt").is_file()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "normed" and manifest["data"]["n_maps"] == 60

    result = invoke("evaluate", out, tsv_folder, "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "Cohen's kappa" in result.output and "vertical+diagonal" in result.output
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    result = invoke("evaluate", "default", tsv_folder, "--kind", "normed")
    assert result.exit_code == 0, result.output

    again = invoke("train", "--kind", "normed", "--data", tsv_folder, "-o", out)
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_train_grid_is_saved_in_the_checkpoint_and_used_at_inference(tsv_folder, tmp_path):
    out = tmp_path / "run16"
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "--grid", "16", "--skip-cv", "--max-epochs",
                    "2", "--group-pattern", r"(\d)$", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    classifier = load_checkpoint(out / "checkpoint")
    assert classifier.preprocess.grid == 16 and classifier.preprocess != PreprocessConfig()
    maps = [np.load(path) for path in sorted(tsv_folder.glob("*.npy"))[:3]]
    assert classifier.features(maps).images.shape[-2:] == (16, 16)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["preprocess"]["grid"] == 16
    # another grid is another run: the folder is not silently reused or overwritten
    again = invoke("train", "--kind", "normed", "--data", tsv_folder, "--grid", "24", "--skip-cv", "-o", out)
    assert again.exit_code != 0 and "--overwrite" in again.output
    too_small = invoke("train", "--kind", "normed", "--data", tsv_folder, "--grid", "4", "-o", tmp_path / "r4")
    assert too_small.exit_code != 0 and "--grid" in too_small.output
    help_text = " ".join(invoke("train", "--help").output.replace("│", " ").split())
    grids = {kind: config.grid for kind, config in DEFAULT_PREPROCESS.items()}
    assert f"{grids['raw']} raw and {grids['normed']} normed" in help_text  # the help states them


def test_train_forest_method_is_saved_in_the_checkpoint(tsv_folder, tmp_path):
    out = tmp_path / "boosted"
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "--forest-method", "gradient-boosting",
                    "--skip-cv", "--max-epochs", "2", "--group-pattern", r"(\d)$", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    classifier = load_checkpoint(out / "checkpoint")
    assert classifier.network.config.forest_method == "gradient-boosting"
    assert type(classifier.forest).__name__ == "BoostedTrees"
    bad = invoke("train", "--kind", "normed", "--data", tsv_folder, "--forest-method", "boosting", "-o",
                 tmp_path / "bad")
    assert bad.exit_code != 0 and "random-forest, gradient-boosting" in bad.output


def test_evaluate_refuses_the_wrong_kind(tsv_folder, raw_classifier, tmp_path):
    ckpt = save_checkpoint(raw_classifier, tmp_path / "raw-ckpt")
    result = invoke("evaluate", ckpt, tsv_folder, "--kind", "normed")
    assert result.exit_code != 0
    assert "trained on raw maps and cannot classify normed maps" in result.output


def test_train_refuses_unknown_labels_and_empty_classes(tsv_folder, tmp_path):
    labels = tsv_folder / "labels.tsv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:-1] + [lines[-1].split("\t")[0] + "\tzigzag"]) + "\n")
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "-o", tmp_path / "r1")
    assert result.exit_code != 0 and "zigzag" in result.output
    labels.write_text("\n".join(line for line in lines if not line.endswith("Block")) + "\n")
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "-o", tmp_path / "r2")
    assert result.exit_code != 0 and "block" in result.output and "--allow-empty-classes" in result.output
    result = invoke("train", "--kind", "normed", "--data", tsv_folder, "--cv-repeats", "0", "-o", tmp_path / "r3")
    assert result.exit_code != 0 and "cv_repeats must be at least 1" in result.output


def test_classify_run_with_checkpoints(tiny_run, raw_classifier, normed_classifier, tmp_path):  # noqa: F811
    raw = save_checkpoint(raw_classifier, tmp_path / "raw")
    normed = save_checkpoint(normed_classifier, tmp_path / "normed")
    out = tmp_path / "cls"
    result = invoke("classify", tiny_run.root, "-o", out, "-c", raw, "-c", normed, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / CLASSIFICATIONS_FILE)
    assert tuple(rows.columns) == CLASSIFICATION_COLUMNS
    assert set(rows["kind"]) == {"raw", "normed"}
    assert (out / HEAD_SUMMARY_FILE).is_file()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert set(manifest["checkpoint"]) == {"raw", "normed"} and manifest["run_manifest"]["run_type"] == "extraction"


def test_classify_without_a_default_says_how_to_build_one(tiny_run, tmp_path, default_dir):  # noqa: F811
    result = invoke("classify", tiny_run.root, "-o", tmp_path / "cls")
    assert result.exit_code != 0
    assert REBUILD_COMMAND in result.output


def test_classify_npy_folder_with_wrong_kind_checkpoint(tmp_path, raw_set, raw_classifier):
    folder = save_npy_folder(tmp_path / "maps", raw_set.subset(range(4)))
    ckpt = save_checkpoint(raw_classifier, tmp_path / "raw")
    result = invoke("classify", folder, "-o", tmp_path / "a", "-c", ckpt, "--kind", "raw", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "a" / CLASSIFICATIONS_FILE)) == 4
    result = invoke("classify", folder, "-o", tmp_path / "b", "-c", ckpt, "--kind", "normed")
    assert result.exit_code != 0 and "trained on raw maps and cannot classify normed maps" in result.output


def test_train_never_replaces_a_finished_checkpoint_without_overwrite(tsv_folder, tmp_path):
    """The same command again, or again after a label changed: the finished run (and its checkpoint) stays as it
    was, and the message says how to train again."""
    out = tmp_path / "run"
    args = ("train", "--kind", "normed", "--data", tsv_folder, "--skip-cv", "--max-epochs", "2", "-o", out, "-q")
    assert invoke(*args).exit_code == 0
    weights = (out / "checkpoint" / "model.safetensors").read_bytes()
    again = invoke(*args)
    assert again.exit_code != 0 and "already holds this training run" in again.output
    lines = (tsv_folder / "labels.tsv").read_text().splitlines()
    name, _ = lines[0].split("\t")
    (tsv_folder / "labels.tsv").write_text("\n".join([f"{name}\tBlock", *lines[1:]]) + "\n")
    changed = invoke(*args)
    assert changed.exit_code != 0 and "--overwrite" in changed.output
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == weights
    assert invoke(*args, "--overwrite").exit_code == 0


@pytest.mark.filterwarnings("ignore:this classifier reads the maps' segment ids")  # loose .npy maps: none
def test_an_evaluation_of_other_labels_never_replaces_the_report_without_overwrite(tsv_folder, tmp_path):
    out = tmp_path / "eval"
    args = ("evaluate", "default", tsv_folder, "--kind", "normed", "-o", out)
    assert invoke(*args).exit_code == 0
    report = (out / "report.json").read_bytes()
    assert invoke(*args).exit_code == 0  # the same labels: the same report again
    lines = (tsv_folder / "labels.tsv").read_text().splitlines()
    name, _ = lines[0].split("\t")
    (tsv_folder / "labels.tsv").write_text("\n".join([f"{name}\tBlock", *lines[1:]]) + "\n")
    changed = invoke(*args)
    assert changed.exit_code != 0 and "--overwrite" in changed.output
    assert (out / "report.json").read_bytes() == report
