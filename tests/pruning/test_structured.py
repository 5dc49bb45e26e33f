"""The s-pruning schedule and its stop rule on synthetic scores, then end to end on a tiny classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.data.records import InputError
from attnpatterns.tasks.evaluation import NotAClassifierError, evaluate
from attnpatterns.pruning.structured import (
    PruningError,
    StructuredConfig,
    run_schedule,
    structured_prune,
)
from attnpatterns.masking.subnetwork import Subnetwork
from tests.helpers import tiny_bert
from tests.pruning.conftest import make_task

L, H = 4, 10  # 40 heads: 4 per joint step, 2 per heads-only step


def _synthetic(score_fn):
    """Importance = a fixed ranking (head index, MLP index); score = score_fn(heads_left, mlps_left)."""
    head_imp = np.arange(L * H, dtype=float).reshape(L, H)
    mlp_imp = np.arange(L, dtype=float)
    calls = []

    def assess(head_mask, mlp_mask, target=None):
        calls.append((int(head_mask.sum()), int(mlp_mask.sum())))
        return score_fn(int(head_mask.sum()), int(mlp_mask.sum())), head_imp, mlp_imp

    return assess, calls


def test_schedule_phases_and_stop_rule():
    # The score falls below 0.9 when fewer than 30 heads or fewer than 2 MLPs are left.
    assess, calls = _synthetic(lambda heads, mlps: 1.0 if heads >= 30 and mlps >= 2 else 0.5)
    result = run_schedule(assess, L, H, StructuredConfig(), metric="accuracy")
    steps = result.steps
    # joint: 36/3 and 32/2 pass, 28/1 fails -> back to 32 heads, 2 MLPs; heads only, 2 per step: 30 passes, 28
    # fails -> back to 30; MLPs only: 1 MLP left fails -> the final masks keep 30 heads and 2 MLPs.
    assert [(s["phase"], s["heads_left"], s["mlps_left"], s["passed"]) for s in steps] == [
        ("full", 40, 4, True),
        ("joint", 36, 3, True),
        ("joint", 32, 2, True),
        ("joint", 28, 1, False),
        ("heads", 30, 2, True),
        ("heads", 28, 2, False),
        ("mlps", 30, 1, False),
    ]
    assert len(calls) == len(steps)  # one assessment (importance + score) per step
    assert result.head_mask.sum() == 30 and result.mlp_mask.sum() == 2
    assert result.full_score == 1.0 and result.final_score == 1.0
    # the least important (lowest index) heads and MLPs went first
    assert np.all(result.head_mask.reshape(-1)[:10] == 0) and np.all(result.head_mask.reshape(-1)[10:] == 1)
    assert list(result.mlp_mask) == [0, 0, 1, 1]
    assert steps[1]["pruned_heads"] == [[0, 0], [0, 1], [0, 2], [0, 3]] and steps[1]["pruned_mlps"] == [0]


def test_schedule_keeps_last_passing_masks_and_logs_every_step():
    assess, _ = _synthetic(lambda heads, mlps: 0.95 if heads > 20 else 0.1)
    result = run_schedule(assess, L, H, StructuredConfig(phases=("heads",)))
    assert all(s["phase"] in ("full", "heads") for s in result.steps)
    assert result.head_mask.sum() == 22 and result.mlp_mask.sum() == L  # MLPs untouched in a heads-only run
    assert result.steps[-1]["passed"] is False and result.steps[-1]["heads_left"] == 20
    log = result.log()
    assert log["target"] == pytest.approx(0.9 * 0.95)
    assert {"step", "phase", "score", "heads_left", "mlps_left", "passed"} <= set(log["steps"][0])


def test_schedule_stops_when_nothing_is_left():
    assess, _ = _synthetic(lambda heads, mlps: 1.0)
    result = run_schedule(assess, L, H, StructuredConfig(phases=("mlps",)))
    assert result.mlp_mask.sum() == 0 and result.head_mask.sum() == L * H and len(result.steps) == 1 + L


def test_threshold_one_and_amount_options():
    assess, _ = _synthetic(lambda heads, mlps: 1.0 - (40 - heads) * 0.001)
    result = run_schedule(assess, L, H, StructuredConfig(threshold=1.0, head_fraction=0.25))
    assert result.head_mask.sum() == 40  # any loss fails a threshold of 1
    assert result.steps[1]["heads_left"] == 30  # 25% of 40 heads per joint step


def test_a_score_exactly_at_the_threshold_passes():
    # 190/216 correct at full size, 171/216 after pruning: exactly 0.9 x, though 0.9 * (190/216) > 171/216 in floats
    assess, _ = _synthetic(lambda heads, mlps: (190 if heads == 40 else 171 if heads == 38 else 100) / 216)
    result = run_schedule(assess, L, H, StructuredConfig(phases=("heads",)))
    assert result.steps[1]["passed"] and result.head_mask.sum() == 38


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.01])
def test_threshold_outside_unit_interval_is_refused(threshold):
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        StructuredConfig(threshold=threshold)


def test_bad_configs():
    with pytest.raises(ValueError, match="phases"):
        StructuredConfig(phases=("joint", "everything"))
    with pytest.raises(ValueError, match="head_fraction"):
        StructuredConfig(head_fraction=1.5)


def test_full_model_scoring_zero_is_refused():
    assess, _ = _synthetic(lambda heads, mlps: 0.0)
    with pytest.raises(PruningError, match="fine-tune the model"):
        run_schedule(assess, L, H, StructuredConfig(), metric="mcc")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from tests.helpers import bundled_model_path

    return AutoTokenizer.from_pretrained(bundled_model_path())


def test_structured_prune_tiny_model(tokenizer):
    model = tiny_bert(classification=True)
    task = make_task(n_train=8, n_dev=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = structured_prune(model, tokenizer, task, StructuredConfig(head_fraction=0.25, max_length=16))
    assert result.method == "structured" and result.metric == "accuracy"
    assert result.head_mask.shape == (2, 4) and result.mlp_mask.shape == (2,)
    assert result.final_score >= 0.9 * result.full_score
    # the final score is what the saved masks give
    again = evaluate(model, tokenizer, task.dev, 2, 16, subnetwork=Subnetwork(result.head_mask, result.mlp_mask))
    assert again["accuracy"] == pytest.approx(result.final_score)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # importance on fewer training examples (separate scoring pass) gives the same kind of result
    other = structured_prune(model, tokenizer, task, StructuredConfig(head_fraction=0.25, max_length=16,
                                                                      importance_split="train", importance_examples=4))
    assert other.final_score >= 0.9 * other.full_score


def test_structured_prune_bad_inputs(tokenizer):
    import dataclasses

    task = make_task(n_train=4, n_dev=4)
    with pytest.raises(NotAClassifierError, match="sequence-classification head"):
        structured_prune(tiny_bert(), tokenizer, task)
    with pytest.raises(NotAClassifierError, match="3 output"):
        structured_prune(tiny_bert(classification=True, num_labels=3), tokenizer, task)
    with pytest.raises(InputError, match="dev set .* is empty"):
        structured_prune(tiny_bert(classification=True), tokenizer, dataclasses.replace(task, dev=()))


def test_default_config_refuses_settings_of_another_method():
    from attnpatterns.pruning.prune import default_config

    task = make_task()
    assert default_config("structured", task, importance_examples=8).importance_examples == 8
    assert default_config("random", task) is None
    with pytest.raises(ValueError, match="magnitude pruning has no setting importance_examples"):
        default_config("magnitude", task, importance_examples=8)
