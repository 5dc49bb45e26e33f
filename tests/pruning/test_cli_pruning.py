"""finetune -> prune (3 seeds) -> survivors through the CLI on a tiny model, and the CLI's clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.masking.subnetwork import Subnetwork
from tests.pruning.conftest import make_task

runner = CliRunner()
FAST = ["--lr", "1e-3", "--batch-size", "8", "--epochs", "1", "--max-length", "16", "-q", "--device", "cpu"]


def _files(tmp_path, n_train=16, n_dev=12):
    task = make_task(n_train=n_train, n_dev=n_dev)
    paths = []
    for split, examples in (("train", task.train), ("dev", task.dev)):
        path = tmp_path / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            writer.writerows([e.text_a, ["neg", "pos"][e.label]] for e in examples)
        paths.append(path)
    return paths


def _invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.mark.slow
def test_finetune_prune_survivors_over_three_seeds(tmp_path, tiny_classifier_path):
    train, dev = _files(tmp_path)
    runs = []
    for seed in range(3):
        ft = tmp_path / f"ft{seed}"
        res = _invoke(["finetune", "--train-file", train, "--dev-file", dev, "-m", tiny_classifier_path,
                       "--seed", seed, "-o", ft, *FAST])
        assert res.exit_code == 0, res.output
        pr = tmp_path / f"prune{seed}"
        # no --task: the task and seed come from the fine-tuning run's manifest
        res = _invoke(["prune", "-m", ft, "-o", pr, "--head-fraction", "0.25", "--max-length", "16", "-q",
                       "--device", "cpu"])
        assert res.exit_code == 0, res.output
        log = json.loads((pr / "pruning_log.json").read_text())
        assert log["steps"][0]["phase"] == "full" and {"score", "heads_left", "mlps_left"} <= set(log["steps"][-1])
        assert json.loads((pr / "manifest.json").read_text())["seed"] == seed
        runs.append(pr)
    # a finished run with the same settings is reused; different settings need --overwrite
    res = _invoke(["prune", "-m", tmp_path / "ft0", "-o", runs[0], "--head-fraction", "0.25", "--max-length", "16",
                   "--device", "cpu"])
    assert res.exit_code == 0 and "->" in res.output
    res = _invoke(["prune", "-m", tmp_path / "ft0", "-o", runs[0], "--threshold", "0.5", "-q"])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = _invoke(["survivors", *runs, "-o", tmp_path / "surv"])
    assert res.exit_code == 0, res.output
    assert "kappa" in res.output and "train" in res.output
    data = json.loads((tmp_path / "surv" / "survivors.json").read_text())
    assert data["seeds"] == [0, 1, 2] and data["n_layers"] == 2 and data["n_heads"] == 4
    assert np.load(tmp_path / "surv" / "super_survivors_head_mask.npy").shape == (2, 4)
    assert (tmp_path / "surv" / "survival_heatmap.png").is_file()
    # controls of the same size, scored on the same fine-tuned model
    res = _invoke(["prune", "-m", tmp_path / "ft0", "--method", "bad", "--reference", runs[0], "-o",
                   tmp_path / "bad0", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "bad0" / "head_mask.npy").sum() == np.load(runs[0] / "head_mask.npy").sum()


def test_magnitude_and_refinetune_from_masks(tmp_path, tiny_classifier_path):
    train, dev = _files(tmp_path)
    ft = tmp_path / "ft"
    assert _invoke(["finetune", "--train-file", train, "--dev-file", dev, "-m", tiny_classifier_path, "-o", ft,
                    *FAST]).exit_code == 0
    res = _invoke(["prune", "-m", ft, "--method", "magnitude", "--max-steps", "2", "--threshold", "0.5",
                   "--max-length", "16", "-o", tmp_path / "mag", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mag" / "weight_masks.safetensors").is_file()
    masks = Subnetwork.load(tmp_path / "mag").weight_masks
    assert "layer0.query.bias" in masks and "layer0.ffn_out.bias" not in masks  # Prasanna et al.'s pool
    res = _invoke(["prune", "-m", ft, "--method", "magnitude", "--pool", "all", "-o", tmp_path / "bad", "-q"])
    assert res.exit_code != 0 and "prasanna2020, weights" in res.output
    res = _invoke(["finetune", "--train-file", train, "--dev-file", dev, "-m", tiny_classifier_path,
                   "--masks", tmp_path / "mag", "-o", tmp_path / "re", *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "re" / "manifest.json").read_text())["held_off"]["weights_total"] > 0


def test_survivors_on_the_published_layout(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "masks" / "heads_mlps"
    for task in ("MRPC", "RTE"):
        for seed in (42, 71, 86):
            folder = root / task / f"seed_{seed}"
            folder.mkdir(parents=True)
            np.save(folder / "head_mask.npy", (rng.random((12, 12)) > 0.2).astype(np.float32))
            np.save(folder / "mlp_mask.npy", np.ones(12, np.float32))
    res = _invoke(["survivors", root, "-o", tmp_path / "out", "--model-name", "bert-base-uncased", "--no-heatmap"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line.split() for line in res.output.splitlines() if line.startswith(("MRPC", "RTE"))}
    for task in ("MRPC", "RTE"):
        data = json.loads((tmp_path / "out" / task / "survivors.json").read_text())
        assert data["model"] == "bert-base-uncased" and data["seeds"] == [42, 71, 86]
        assert lines[task][1] == "3" and lines[task][2] == f"{len(data['super_survivor_heads'])}/144"
        assert lines[task][4] == f"{data['fleiss_kappa_heads']:.3f}"
    res = _invoke(["survivors", root, "-o", tmp_path / "out", "-q"])
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_clear_errors(tmp_path, tiny_classifier_path, tiny_encoder_path):
    train, dev = _files(tmp_path, n_train=4, n_dev=4)
    base = ["--train-file", train, "--dev-file", dev]
    # a checkpoint with no classification head where one is needed
    res = _invoke(["prune", "-m", tiny_encoder_path, *base, "-q"])
    assert res.exit_code == 2 and "classification head" in res.output
    # a metric the task cannot use
    res = _invoke(["prune", "-m", tiny_classifier_path, *base, "--metric", "pearson", "-q"])
    assert res.exit_code == 2 and "cannot be used" in res.output
    # a threshold outside (0, 1]
    res = _invoke(["prune", "-m", tiny_classifier_path, *base, "--threshold", "1.5", "-q"])
    assert res.exit_code == 2 and "threshold must be in (0, 1]" in res.output
    # an unknown method
    res = _invoke(["prune", "-m", tiny_classifier_path, *base, "--method", "lottery", "-q"])
    assert res.exit_code == 2 and "structured, magnitude, random, bad" in res.output
    # a control without its reference
    res = _invoke(["prune", "-m", tiny_classifier_path, *base, "--method", "random", "-q"])
    assert res.exit_code == 2 and "--reference" in res.output
    # a task file without labels, or with labels the training file never had
    (tmp_path / "nolabel.csv").write_text("sentence\nfine\n")
    res = _invoke(["finetune", "--train-file", tmp_path / "nolabel.csv", "--dev-file", dev, "-q"])
    assert res.exit_code == 2 and "no column 'label'" in res.output
    (tmp_path / "odd.csv").write_text("sentence,label\nfine,positive\n")
    res = _invoke(["finetune", "--train-file", train, "--dev-file", tmp_path / "odd.csv", "-q"])
    assert res.exit_code == 2 and "never occur" in res.output
    # an empty dev set
    (tmp_path / "empty.csv").write_text("sentence,label\n")
    res = _invoke(["prune", "-m", tiny_classifier_path, "--train-file", train, "--dev-file",
                   tmp_path / "empty.csv", "-q"])
    assert res.exit_code == 2 and "no rows" in res.output
    # a classifier fine-tuned for another number of labels
    (tmp_path / "three.csv").write_text("sentence,label\na,x\nb,y\nc,z\n")
    res = _invoke(["finetune", "--train-file", tmp_path / "three.csv", "--dev-file", tmp_path / "three.csv",
                   "-m", tiny_classifier_path, "-o", tmp_path / "t3", *FAST])
    assert res.exit_code == 2 and "but 3 are needed" in res.output
    # masks of the wrong shape
    np.save(tmp_path / "head_mask.npy", np.ones((12, 12), np.float32))
    res = _invoke(["finetune", *base, "-m", tiny_classifier_path, "--masks", tmp_path, "-o", tmp_path / "m", *FAST])
    assert res.exit_code == 2 and "2 layers x 4 heads" in res.output
    # fp16 without a GPU
    if not torch.cuda.is_available():
        res = _invoke(["prune", "-m", tiny_classifier_path, *base, "--mixed-precision", "fp16", "--device", "cpu",
                       "-q"])
        assert res.exit_code == 2 and "needs a CUDA GPU" in res.output
    res = _invoke(["survivors", tmp_path / "nowhere"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_bf16_autocast_pruning(tmp_path, tiny_classifier_path):
    train, dev = _files(tmp_path, n_train=4, n_dev=8)
    res = _invoke(["prune", "-m", tiny_classifier_path, "--train-file", train, "--dev-file", dev, "--max-length", "16",
                   "--phases", "mlps", "--mixed-precision", "bf16", "--device", "cpu", "-o", tmp_path / "p", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["mixed_precision"] == "bf16"


@pytest.mark.gpu
def test_finetune_and_prune_on_cuda_with_fp16(tmp_path, tiny_classifier_path):
    train, dev = _files(tmp_path)
    fast = [a for a in FAST if a not in ("--device", "cpu")]
    res = _invoke(["finetune", "--train-file", train, "--dev-file", dev, "-m", tiny_classifier_path, "-o",
                   tmp_path / "ft", "--mixed-precision", "fp16", "--device", "cuda", *fast])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ft" / "manifest.json").read_text())["device"].startswith("cuda")
    res = _invoke(["prune", "-m", tmp_path / "ft", "--max-length", "16", "--mixed-precision", "fp16",
                   "--device", "cuda", "-o", tmp_path / "p", "-q"])
    assert res.exit_code == 0, res.output
