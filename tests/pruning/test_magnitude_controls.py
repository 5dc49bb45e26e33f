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


def _reference_pool(model, pool):
    """Prasanna et al.'s ``parameters_to_prune`` (src/run_glue.py), written out on the transformers BERT modules."""
    out = []
    for layer in model.bert.encoder.layer:
        att, ffn_in, ffn_out = layer.attention, layer.intermediate.dense, layer.output.dense
        if pool == "prasanna2020":
            out += [(att.self.key, "weight"), (att.self.key, "bias"), (att.self.query, "weight"),
                    (att.self.query, "bias"), (att.self.value, "weight"), (att.self.value, "bias"),
                    (att.output.dense, "weight"), (att.output.dense, "bias"), (ffn_in, "weight"), (ffn_in, "bias"),
                    (ffn_out, "weight")]
        else:
            out += [(m, "weight") for m in (att.self.query, att.self.key, att.self.value, att.output.dense, ffn_in,
                                             ffn_out)]
    return out


def _noisy_tiny_bert():
    """A tiny classifier whose biases are not all zero (as after fine-tuning), so no two |w| tie."""
    model = tiny_bert(classification=True, seed=3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("pool", ["prasanna2020", "weights"])
def test_steps_give_torchs_global_unstructured_masks_over_the_reference_pool(pool):
    """Three 10% steps over the pool against torch.nn.utils.prune.global_unstructured (L1Unstructured, amount 0.1,
    as Prasanna et al.'s prune_model) on a copy of the model, over the pool listed by hand."""
    import copy

    from torch.nn.utils import prune

    model = _noisy_tiny_bert()
    weights = encoder_weights(model, pool)
    reference = copy.deepcopy(model)
    targets = _reference_pool(reference, pool)
    assert len(weights) == len(targets) == 2 * (11 if pool == "prasanna2020" else 6)
    assert [tuple(w.shape) for w in weights.values()] == [tuple(getattr(m, a).shape) for m, a in targets]
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    for _ in range(3):
        masks = global_magnitude_step(weights, masks, 0.1)
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=0.1)
        want = [getattr(m, f"{a}_mask").bool() for m, a in targets]
        assert all(torch.equal(got, w) for got, w in zip(masks.values(), want))


def _reference_mask_global(model, score, threshold):
    """``mask_global`` of Prasanna et al.'s src/find_global_weight_mask.py, its loop as written: at most 10 steps,
    the mask copied before each prune, the copy saved."""
    import copy

    from torch.nn.utils import prune

    model = copy.deepcopy(model)
    targets = _reference_pool(model, "prasanna2020")
    prune.global_unstructured(targets, pruning_method=prune.Identity)
    new_mask = [getattr(m, f"{a}_mask").clone() for m, a in targets]
    original = current = score(model)
    total_steps = 10
    while total_steps != 0 and current >= original * threshold:
        total_steps -= 1
        mask = [t.clone() for t in new_mask]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=0.1)
        new_mask = [getattr(m, f"{a}_mask").clone() for m, a in targets]
        current = score(model)
    return [t.bool() for t in mask]


def _pool_mass(model) -> float:
    """A dev "score" that falls as weights go: the total |w| of the pool as the model has it now (pruned weights
    are zero both under torch's reparametrisation and inside attnpatterns' weights_zeroed)."""
    return float(sum(getattr(m, a).detach().abs().sum() for m, a in _reference_pool(model, "prasanna2020")))


def _score_by_pool_mass(monkeypatch) -> None:
    """magnitude_prune's dev score replaced by the pool's |w| while its masks are applied (predict runs inside
    weights_zeroed; the metric is taken from what predict returned)."""
    import numpy as np

    import attnpatterns.pruning.magnitude as magnitude

    monkeypatch.setattr(magnitude, "predict", lambda model, *a, **k: (np.array([[_pool_mass(model)]]), None))
    monkeypatch.setattr(magnitude, "compute_metrics", lambda logits, *a, **k: {"accuracy": float(logits[0, 0])})


@pytest.mark.parametrize("threshold", [0.999, 0.99, 0.97, 0.5])
def test_magnitude_prune_keeps_the_reference_loops_masks(tokenizer, monkeypatch, threshold):
    """The default configuration against the reference loop, both scored by the pool's remaining |w| (so the stop
    step depends on the threshold; at 0.5 every step passes and the reference keeps nine)."""
    model = _noisy_tiny_bert()
    want = _reference_mask_global(model, _pool_mass, threshold)
    _score_by_pool_mass(monkeypatch)
    result = magnitude_prune(model, tokenizer, make_task(n_train=4, n_dev=8), MagnitudeConfig(threshold=threshold,
                                                                                              max_length=16))
    got = list(result.subnetwork.weight_masks.values())
    assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))
    kept_steps = sum(s["passed"] for s in result.steps[1:])
    assert result.subnetwork.summary()["sparsity"] == pytest.approx(1 - 0.9**kept_steps, abs=1e-3)


def test_the_thresholds_above_stop_at_different_steps(tokenizer, monkeypatch):
    """The reference comparison above covers early stops and the all-pass case (else it would prove little)."""
    steps = []
    for threshold in (0.999, 0.99, 0.97, 0.5):
        model = _noisy_tiny_bert()
        _score_by_pool_mass(monkeypatch)
        result = magnitude_prune(model, tokenizer, make_task(n_train=4, n_dev=8),
                                 MagnitudeConfig(threshold=threshold, max_length=16))
        steps.append(sum(s["passed"] for s in result.steps[1:]))
    assert len(set(steps)) >= 3 and steps[-1] == 9


def test_magnitude_prune_covers_encoder_linears_only(tokenizer):
    model = tiny_bert(classification=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = make_task(n_train=4, n_dev=16)
    result = magnitude_prune(model, tokenizer, task, MagnitudeConfig(max_steps=3, threshold=0.5, max_length=16,
                                                                     pool="weights"))
    masks = result.subnetwork.weight_masks
    assert set(masks) == set(encoder_weights(model, "weights")) and len(masks) == 2 * 6
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


def test_a_config_saved_before_pools_reads_as_the_weights_pool():
    old = {"amount": 0.1, "max_steps": 10, "threshold": 0.9, "max_length": 128, "batch_size": 64,
           "max_dev_examples": None}
    assert MagnitudeConfig.from_dict(old).pool == "weights"
    assert MagnitudeConfig.from_dict(MagnitudeConfig().to_dict()) == MagnitudeConfig()
    with pytest.raises(ValueError, match="prasanna2020, weights"):
        MagnitudeConfig(pool="all")
