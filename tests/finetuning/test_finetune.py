"""Fine-tuning with the Trainer on a tiny model: the run folder, reuse of finished runs, held-off masks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from attnpatterns.extraction import RunExistsError
from attnpatterns.finetuning.finetune import PRESETS, QUICK_TASK_SETTINGS, FinetuneConfig, FinetuneResult, finetune
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.models import load_model
from attnpatterns.tasks.evaluation import NotAClassifierError
from tests.pruning.conftest import make_task

CONFIG = FinetuneConfig(learning_rate=1e-3, batch_size=8, epochs=1, max_length=16)


def test_finetune_writes_a_loadable_run_and_reuses_it(tmp_path, tiny_classifier_path):
    task = make_task(n_train=16, n_dev=8)
    loaded = load_model(tiny_classifier_path, head="classification", num_labels=2)
    result = finetune(loaded, task, tmp_path / "run", CONFIG, progress=False)
    assert not result.reused and set(result.dev_metrics) == {"accuracy", "f1", "mcc"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_examples"] == 16 and metrics["majority_baseline"] == 0.5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 0 and manifest["task"]["name"] == "toy"
    back = load_model(tmp_path / "run")
    assert back.is_classifier and not (tmp_path / "run" / "_trainer").exists()
    again = finetune(load_model(tiny_classifier_path, head="classification", num_labels=2), task, tmp_path / "run",
                     CONFIG, progress=False)
    assert again.reused and again.dev_metrics == result.dev_metrics
    with pytest.raises(RunExistsError, match="--overwrite"):
        finetune(loaded, task, tmp_path / "run", FinetuneConfig(learning_rate=1e-3, batch_size=8, epochs=2,
                                                                max_length=16), progress=False)
    assert FinetuneResult.load(tmp_path / "run").score == result.score


def test_refinetune_holds_masked_parts_off(tmp_path, tiny_classifier_path):
    task = make_task(n_train=16, n_dev=8)
    loaded = load_model(tiny_classifier_path, head="classification", num_labels=2)
    head = np.ones((2, 4), np.float32)
    head[1, 2] = 0
    weights = {"layer0.ffn_in": torch.rand(loaded.model.bert.encoder.layer[0].intermediate.dense.weight.shape) > 0.3}
    before = loaded.model.bert.encoder.layer[1].attention.self.query.weight.clone()
    d = loaded.adapter.head_dim
    finetune(loaded, task, tmp_path / "re", CONFIG, Subnetwork(head, None, weights), progress=False)
    after = load_model(tmp_path / "re").model
    assert torch.all(after.bert.encoder.layer[0].intermediate.dense.weight[~weights["layer0.ffn_in"]] == 0)
    q = after.bert.encoder.layer[1].attention.self.query.weight
    torch.testing.assert_close(q[2 * d : 3 * d], before[2 * d : 3 * d])  # a gated-off head gets no gradient
    saved = Subnetwork.load(tmp_path / "re")
    np.testing.assert_array_equal(saved.head_mask, head)
    assert torch.equal(saved.weight_masks["layer0.ffn_in"], weights["layer0.ffn_in"])


def test_bad_inputs(tmp_path, tiny_encoder_path, tiny_classifier_path):
    task = make_task(n_train=4, n_dev=4)
    with pytest.raises(NotAClassifierError, match="classification head"):
        finetune(load_model(tiny_encoder_path), task, tmp_path / "x", CONFIG, progress=False)
    loaded = load_model(tiny_classifier_path)
    with pytest.raises(ValueError, match="fp16 mixed precision needs a CUDA GPU"):
        finetune(loaded, task, tmp_path / "x", FinetuneConfig(mixed_precision="fp16"), progress=False)
    with pytest.raises(ValueError, match="mixed precision must be one of"):
        FinetuneConfig(mixed_precision="fp8")


def test_presets():
    builtin = dataclasses.replace(make_task(), origin="builtin")
    assert FinetuneConfig.for_task(builtin).max_length == PRESETS["quick"]["max_length"]
    paper = FinetuneConfig.for_task(make_task(), epochs=1)
    assert (paper.learning_rate, paper.batch_size, paper.max_length, paper.epochs) == (2e-5, 32, 128, 1)
    assert FinetuneConfig.for_task(builtin, "paper").max_length == 128
    entail = dataclasses.replace(builtin, name="entail")
    assert FinetuneConfig.for_task(entail).epochs == QUICK_TASK_SETTINGS["entail"]["epochs"]
    assert FinetuneConfig.for_task(entail, epochs=1).epochs == 1
    with pytest.raises(ValueError, match="unknown preset"):
        FinetuneConfig.for_task(builtin, "fast")


def test_regression_finetune(tmp_path, tiny_encoder_path):
    task = make_task(n_train=8, n_dev=6)
    task = dataclasses.replace(
        task, num_labels=1, metric="corr", label_names=(),
        train=tuple(dataclasses.replace(e, label=float(e.label) * 4.5) for e in task.train),
        dev=tuple(dataclasses.replace(e, label=float(i)) for i, e in enumerate(task.dev)),
    )
    loaded = load_model(tiny_encoder_path, head="classification", num_labels=1)  # a new one-output head
    result = finetune(loaded, task, tmp_path / "reg", CONFIG, progress=False)
    assert set(result.dev_metrics) == {"pearson", "spearman", "corr"}
    assert json.loads((tmp_path / "reg" / "metrics.json").read_text())["majority_baseline"] is None
