"""Gates are checked against an independent way of removing the same component: zeroing its weights."""

from __future__ import annotations

import numpy as np
import torch

from attnpatterns.masking.gates import Gates, gated
from tests.helpers import tiny_bert


def _inputs():
    g = torch.Generator().manual_seed(3)
    return {"input_ids": torch.randint(1000, 3000, (2, 7), generator=g)}


def test_all_ones_gates_change_nothing():
    model = tiny_bert()
    x = _inputs()
    with torch.no_grad():
        ref = model(**x).last_hidden_state
        with gated(model):
            got = model(**x).last_hidden_state
    torch.testing.assert_close(got, ref)


def test_head_gate_zero_equals_zeroed_value_weights():
    model, reference = tiny_bert(), tiny_bert()
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        v = reference.encoder.layer[1].attention.self.value
        v.weight[2 * d : 3 * d] = 0  # head 2 of layer 1 reads nothing: its context vector is 0
        v.bias[2 * d : 3 * d] = 0
        mask = np.ones((2, 4), np.float32)
        mask[1, 2] = 0
        with gated(model, head_mask=mask):
            got = model(**_inputs()).last_hidden_state
        want = reference(**_inputs()).last_hidden_state
    torch.testing.assert_close(got, want)


def test_mlp_gate_zero_equals_zeroed_ffn_output():
    model, reference = tiny_bert(), tiny_bert()
    with torch.no_grad():
        out = reference.encoder.layer[0].output.dense
        out.weight.zero_()
        out.bias.zero_()
        with gated(model, mlp_mask=np.array([0, 1], np.float32)):
            got = model(**_inputs()).last_hidden_state
        want = reference(**_inputs()).last_hidden_state
    torch.testing.assert_close(got, want)


def test_differentiable_gate_gradient_matches_finite_difference():
    model = tiny_bert()
    x = _inputs()
    gates = Gates(model, requires_grad=True)
    with gates:
        loss = model(**x).last_hidden_state.pow(2).sum()
        loss.backward()
    grad = gates.head.grad[0, 1].item()
    eps = 1e-3
    values = []
    for sign in (+1, -1):
        mask = np.ones((2, 4), np.float32)
        mask[0, 1] = 1 + sign * eps
        g = Gates(model)
        with torch.no_grad():
            g.head[0, 1] = 1 + sign * eps  # bypass 0/1 validation: a gate value, not a mask
        with g, torch.no_grad():
            values.append(model(**x).last_hidden_state.double().pow(2).sum().item())
    fd = (values[0] - values[1]) / (2 * eps)
    assert abs(fd - grad) <= 1e-2 * max(1.0, abs(fd))


def test_hooks_are_removed():
    model = tiny_bert()
    with gated(model, head_mask=np.zeros((2, 4), np.float32)):
        pass
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
