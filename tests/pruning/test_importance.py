"""Importance scores against a brute-force gradient computed another way: finite differences of each example's loss
under explicitly scaled weights (no gates, no hooks), in float64 on a tiny classifier."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning.importance import ImportanceConfig, compute_importance, normalize
from tests.helpers import bundled_model_path, tiny_bert

TEXTS = [
    ("the film was a quiet delight", 1),
    ("a dull and tiresome plot", 0),
    ("bright performances carry it", 1),
    ("nothing works here", 0),
    ("an odd, lovely little story about a lighthouse", 1),
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path())


def _examples():
    return [TextExample(str(i), t, None, y) for i, (t, y) in enumerate(TEXTS)]


def _scaled_copy(model, head_scale: np.ndarray, mlp_scale: np.ndarray):
    """A copy whose W_O columns of head (l, h) are multiplied by head_scale[l, h], and FFN outputs by mlp_scale[l]."""
    out = copy.deepcopy(model)
    d = out.config.hidden_size // out.config.num_attention_heads
    with torch.no_grad():
        for l, layer in enumerate(out.bert.encoder.layer):
            for h in range(head_scale.shape[1]):
                layer.attention.output.dense.weight[:, h * d : (h + 1) * d] *= float(head_scale[l, h])
            layer.output.dense.weight *= float(mlp_scale[l])
            layer.output.dense.bias *= float(mlp_scale[l])
    return out


def _example_losses(model, tokenizer):
    losses = []
    with torch.no_grad():
        for text, label in TEXTS:
            enc = tokenizer([text], return_tensors="pt")
            logits = model(**enc).logits
            losses.append(F.cross_entropy(logits, torch.tensor([label]), reduction="sum").item())
    return np.array(losses)


def _brute_force(model, tokenizer, head_mask, mlp_mask, eps=1e-5):
    """Σ_x |∂L(x)/∂ξ| by central differences around the mask values."""
    L, H = head_mask.shape
    head, mlp = np.zeros((L, H)), np.zeros(L)
    for l in range(L):
        for h in range(H):
            plus, minus = head_mask.astype(np.float64), head_mask.astype(np.float64)
            plus[l, h] += eps
            minus[l, h] -= eps
            diff = _example_losses(_scaled_copy(model, plus, mlp_mask), tokenizer) - _example_losses(
                _scaled_copy(model, minus, mlp_mask), tokenizer
            )
            head[l, h] = np.abs(diff / (2 * eps)).sum()
        plus, minus = mlp_mask.astype(np.float64), mlp_mask.astype(np.float64)
        plus[l] += eps
        minus[l] -= eps
        diff = _example_losses(_scaled_copy(model, head_mask, plus), tokenizer) - _example_losses(
            _scaled_copy(model, head_mask, minus), tokenizer
        )
        mlp[l] = np.abs(diff / (2 * eps)).sum()
    return head, mlp


@pytest.mark.parametrize("masked", [False, True])
def test_importance_matches_finite_differences(tokenizer, masked):
    model = tiny_bert(classification=True).double()
    head_mask, mlp_mask = np.ones((2, 4), np.float32), np.ones(2, np.float32)
    if masked:  # gradients at a gate value of 0 too
        head_mask[0, 1] = head_mask[1, 3] = 0
        mlp_mask[1] = 0
    raw = ImportanceConfig(normalize_heads_by_layer=False, normalize_mlps_by_tokens=False, normalize_global=False)
    got = compute_importance(model, tokenizer, _examples(), 2, Subnetwork(head_mask, mlp_mask), raw, batch_size=2)
    want_head, want_mlp = _brute_force(model, tokenizer, head_mask, mlp_mask)
    np.testing.assert_allclose(got.head_raw, want_head, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got.mlp_raw, want_mlp, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got.head, got.head_raw)  # no normalisation asked for
    assert got.n_examples == 5 and got.n_tokens == sum(len(tokenizer(t)["input_ids"]) for t, _ in TEXTS)


def test_batching_does_not_change_per_example_importance(tokenizer):
    model = tiny_bert(classification=True).double()
    one = compute_importance(model, tokenizer, _examples(), 2, batch_size=1)
    many = compute_importance(model, tokenizer, _examples(), 2, batch_size=4)
    np.testing.assert_allclose(one.head_raw, many.head_raw, rtol=1e-9)
    np.testing.assert_allclose(one.logits, many.logits, rtol=1e-6)
    michel = compute_importance(model, tokenizer, _examples(), 2, batch_size=1,
                                config=ImportanceConfig(variant="michel"))
    assert np.all(one.head_raw <= michel.head_raw + 1e-12)  # |Σ_t .| <= Σ_t |.|


def test_parameters_are_left_as_they_were(tokenizer):
    model = tiny_bert(classification=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_importance(model, tokenizer, _examples(), 2)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_normalisations():
    head_raw = np.array([[3.0, 4.0], [1.0, 0.0]])
    mlp_raw = np.array([10.0, 30.0])
    head, mlp = normalize(head_raw, mlp_raw, n_tokens=10, config=ImportanceConfig(normalize_global=False))
    np.testing.assert_allclose(head, [[0.6, 0.8], [1.0, 0.0]])  # per-layer L2
    np.testing.assert_allclose(mlp, [1.0, 3.0])  # divided by tokens
    head, mlp = normalize(head_raw, mlp_raw, 10, ImportanceConfig())
    np.testing.assert_allclose(head, [[0.6, 0.8], [1.0, 0.0]])  # min-max over [0, 1] already
    np.testing.assert_allclose(mlp, [0.0, 1.0])
    head, _ = normalize(head_raw, mlp_raw, 10, ImportanceConfig(normalize_heads_by_layer=False))
    np.testing.assert_allclose(head, head_raw / 4)


def test_config_variants_and_old_settings():
    assert ImportanceConfig().to_dict() == {"normalize_heads_by_layer": True, "normalize_mlps_by_tokens": True,
                                            "normalize_global": True, "per_example": True}  # as before variants
    for variant in ("per_example", "bertology", "michel"):
        config = ImportanceConfig(variant=variant, normalize_global=False)
        assert ImportanceConfig.from_dict(config.to_dict()) == config
    assert ImportanceConfig.from_dict({"per_example": True}) == ImportanceConfig()
    with pytest.raises(ValueError, match="variant='bertology'"):
        ImportanceConfig.from_dict({"per_example": False})
    with pytest.raises(ValueError, match="per_example, bertology, michel"):
        ImportanceConfig(variant="paper")


def test_bad_inputs(tokenizer):
    from attnpatterns.tasks.evaluation import NotAClassifierError

    with pytest.raises(NotAClassifierError, match="classification head"):
        compute_importance(tiny_bert(), tokenizer, _examples(), 2)
    with pytest.raises(InputError, match="at least one"):
        compute_importance(tiny_bert(classification=True), tokenizer, [], 2)
    with pytest.raises(InputError, match="labelled"):
        compute_importance(tiny_bert(classification=True), tokenizer, [TextExample("0", "text")], 2)
