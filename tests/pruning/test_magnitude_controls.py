"""Magnitude pruning steps, random and bad controls, and the held-off masks used for re-fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.pruning.controls import bad_mask, control_subnetwork, random_mask, score_control
from attnpatterns.pruning.magnitude import (
    MagnitudeConfig,
    encoder_weights,
    global_magnitude_step,
    magnitude_prune,
)
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning.result import PruningResult
from tests.helpers import bundled_model_path, tiny_bert
from tests.pruning.conftest import make_task


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path())


def test_global_step_removes_ten_percent_of_remaining_smallest_weights():
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(10, 10, generator=g), "b": torch.randn(20, 5, generator=g) * 3}
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    first = global_magnitude_step(weights, masks, 0.1)
    assert sum(int(m.sum()) for m in first.values()) == 180
    all_abs = torch.cat([w.abs().reshape(-1) for w in weights.values()])
    kept_abs = torch.cat([w.abs()[first[n]] for n, w in weights.items()])
    dropped_abs = torch.cat([w.abs()[~first[n]] for n, w in weights.items()])
    assert dropped_abs.max() <= kept_abs.min() and len(dropped_abs) == 20 and len(all_abs) == 200
    second = global_magnitude_step(weights, first, 0.1)
    assert sum(int(m.sum()) for m in second.values()) == 162  # 10% of the 180 left
    assert all(torch.all(second[n] <= first[n]) for n in weights)  # pruned weights stay pruned


def test_magnitude_prune_covers_encoder_linears_only(tokenizer):
    model = tiny_bert(classification=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = make_task(n_train=4, n_dev=16)
    result = magnitude_prune(model, tokenizer, task, MagnitudeConfig(max_steps=3, threshold=0.5, max_length=16))
    masks = result.subnetwork.weight_masks
    assert set(masks) == set(encoder_weights(model)) and len(masks) == 2 * 6
    assert len(result.steps) <= 4 and result.steps[0]["phase"] == "full"
    passed = [s for s in result.steps[1:] if s["passed"]]
    kept = 1 - result.subnetwork.summary()["sparsity"]
    assert kept == pytest.approx(0.9 ** len(passed), abs=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights restored


def test_random_and_bad_head_masks_have_the_reference_size():
    rng = np.random.default_rng(0)
    ref = np.ones((4, 6), np.float32)
    ref.reshape(-1)[:18] = 0  # 6 kept, 18 pruned
    rand = random_mask(ref, rng)
    bad = bad_mask(ref, rng)
    assert rand.sum() == bad.sum() == 6
    assert np.all(bad[ref == 1] == 0)  # cut from the pruned ones only
    ref2 = np.ones(6, np.float32)
    ref2[:2] = 0  # 4 kept, 2 pruned: bad keeps both pruned and tops up with 2 kept ones
    bad2 = bad_mask(ref2, rng)
    assert bad2.sum() == 4 and np.all(bad2[:2] == 1)


def test_control_subnetworks_and_weight_counts_per_matrix():
    ref = Subnetwork(
        np.array([[1, 0, 0, 1]], np.float32),
        np.array([0, 1], np.float32),
        {"layer0.query": torch.tensor([[True, False], [False, False]]), "layer0.key": torch.ones(2, 2, dtype=bool)},
    )
    for kind in ("random", "bad"):
        sub = control_subnetwork(ref, kind, seed=3)
        assert sub.head_mask.sum() == 2 and sub.mlp_mask.sum() == 1
        assert int(sub.weight_masks["layer0.query"].sum()) == 1 and bool(sub.weight_masks["layer0.key"].all())
    assert np.array_equal(control_subnetwork(ref, "bad", 0).head_mask, [[0, 1, 1, 0]])
    again = control_subnetwork(ref, "random", 5).head_mask
    assert np.array_equal(control_subnetwork(ref, "random", 5).head_mask, again)
    with pytest.raises(ValueError, match="random, bad"):
        control_subnetwork(ref, "worst")


def test_score_control(tokenizer):
    model = tiny_bert(classification=True)
    task = make_task(n_train=4, n_dev=8)
    head = np.ones((2, 4), np.float32)
    head[0, :2] = 0
    reference = PruningResult("structured", "accuracy", 0.9, 0.5, 0.5, Subnetwork(head, np.ones(2, np.float32)))
    result = score_control(model, tokenizer, task, reference, "bad", seed=1, max_length=16)
    assert result.method == "bad" and result.head_mask.sum() == 6 and result.steps[1]["heads_left"] == 6
    assert np.all(result.head_mask[0, :2] == 1)


def test_held_off_training_keeps_masked_weights_at_zero():
    model = tiny_bert(classification=True)
    mask = torch.rand(model.bert.encoder.layer[0].attention.self.query.weight.shape) > 0.5
    sub = Subnetwork(weight_masks={"layer0.query": mask})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.randint(1000, 2000, (4, 6))
    with sub.held_off(model):
        for _ in range(3):
            model.train()
            loss = model(input_ids=ids, labels=torch.tensor([0, 1, 0, 1])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    weight = model.bert.encoder.layer[0].attention.self.query.weight
    assert torch.all(weight[~mask] == 0) and torch.any(weight[mask] != 0)
    assert "weight" in dict(model.bert.encoder.layer[0].attention.self.query.named_parameters())
