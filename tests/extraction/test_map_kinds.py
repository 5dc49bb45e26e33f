"""The layer-level kinds (rollout, resln, alti, valuezero) against brute force written separately here.

The brute force recomputes every layer by hand, in float64, from the weights in the state dict (explicit per-token
Python loops for the contributions), checks that its layer outputs are the model's, and derives each map from the
papers' definitions; value zeroing is brute-forced literally: one full forward per (layer, token) with a separate
hook that zeroes that token's value vector. The library runs the float32 model through MapCapture's hooks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnpatterns.constants import LAYER_KINDS
from attnpatterns.extraction import MapCapture
from attnpatterns.masking.gates import gated
from tests.extraction.test_maps import _batch  # 3 examples of 9 tokens, one padded
from tests.helpers import tiny_bert

TOL = 1e-5
KINDS = ("raw", "normed", *LAYER_KINDS)


def _layer_norm(y, gamma, beta, eps):
    mean = y.mean()
    s = math.sqrt(float(((y - mean) ** 2).mean()) + eps)
    return gamma * (y - mean) / s + beta, s


def _by_hand(model, batch, head_mask):
    """Per layer: α (B, H, T, T), the f^h(x_j) vectors, x, s(y_i) and x̃_i, recomputed from the state dict."""
    cfg = model.config
    H, D = cfg.num_attention_heads, cfg.hidden_size
    d = D // H
    sd = {k: v.double() for k, v in model.state_dict().items()}
    mask = batch["attention_mask"]
    B, T = mask.shape
    with torch.no_grad():
        x = model(**batch, output_hidden_states=True).hidden_states[0].double()
    layers = []
    for layer in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{layer}."
        lin = lambda t, name: t @ sd[p + name + ".weight"].T + sd[p + name + ".bias"]  # noqa: E731
        q, k, v = lin(x, "attention.self.query"), lin(x, "attention.self.key"), lin(x, "attention.self.value")
        w_o = sd[p + "attention.output.dense.weight"]
        kept = [h for h in range(H) if head_mask is None or head_mask[layer, h] == 1]
        alpha = torch.zeros(B, H, T, T, dtype=torch.float64)
        f = torch.zeros(B, T, H, D, dtype=torch.float64)
        for b in range(B):
            for h in range(H):
                hs = slice(h * d, (h + 1) * d)
                for i in range(T):
                    scores = torch.tensor([
                        float(q[b, i, hs] @ k[b, j, hs]) / math.sqrt(d) if mask[b, j] else -math.inf for j in range(T)
                    ])
                    alpha[b, h, i] = torch.softmax(scores, dim=0)
                for j in range(T):
                    f[b, j, h] = w_o[:, hs] @ v[b, j, hs]
        gamma, beta = sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"]
        eps = model.encoder.layer[layer].attention.output.LayerNorm.eps
        out1 = torch.zeros(B, T, D, dtype=torch.float64)
        scale = torch.zeros(B, T, dtype=torch.float64)
        for b in range(B):
            for i in range(T):
                y = sum(alpha[b, h, i, j] * f[b, j, h] for h in kept for j in range(T))
                y = y + sd[p + "attention.output.dense.bias"] + x[b, i]
                out1[b, i], scale[b, i] = _layer_norm(y, gamma, beta, eps)
        inter = torch.nn.functional.gelu(lin(out1, "intermediate.dense"))
        y2 = lin(inter, "output.dense") + out1
        g2, b2 = sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"]
        out2 = torch.stack([torch.stack([_layer_norm(y2[b, i], g2, b2, eps)[0] for i in range(T)]) for b in range(B)])
        layers.append({"x": x, "alpha": alpha, "f": f, "kept": kept, "gamma": gamma, "scale": scale, "out": out1,
                       "layer_out": out2})
        x = out2
    return layers


def _rownorm(m):
    return m / m.sum(-1, keepdims=True)


def brute_force(model, batch, head_mask=None):
    """{kind: [per layer (B, T, T) numpy float64]} for rollout, resln and alti, from the papers' definitions."""
    layers = _by_hand(model, batch, head_mask)
    lengths = batch["attention_mask"].sum(1).tolist()
    B, T = batch["attention_mask"].shape
    out = {"rollout": [], "resln": [], "alti": [], "layer_out": [L["layer_out"] for L in layers]}
    roll_prev = alti_prev = None
    for L in layers:
        kept, alpha, f, x, gamma = L["kept"], L["alpha"], L["f"], L["x"], L["gamma"]
        rollout = np.zeros((B, T, T))
        resln = np.zeros((B, T, T))
        alti = np.zeros((B, T, T))
        for b, n in enumerate(lengths):
            # Abnar & Zuidema (2020): mean over (kept) heads, plus the identity, rows renormalised
            mean = alpha[b, kept].mean(0).numpy() if kept else np.zeros((T, T))
            rollout[b] = _rownorm(0.5 * mean + 0.5 * np.eye(T)) if kept else np.eye(T)
            x_out = L["out"][b].numpy()
            for i in range(n):
                for j in range(n):
                    z = sum((alpha[b, h, i, j] * f[b, j, h] for h in kept), torch.zeros_like(x[b, i]))
                    if i == j:
                        z = z + x[b, i]
                    g = (gamma * (z - z.mean()) / L["scale"][b, i]).numpy()  # g_i(z_ij), Kobayashi et al. 2021
                    resln[b, i, j] = np.linalg.norm(g)
                    alti[b, i, j] = max(0.0, -np.abs(x_out[i] - g).sum() + np.abs(x_out[i]).sum())
                alti[b, i, :n] /= alti[b, i, :n].sum()
        roll_prev = rollout if roll_prev is None else rollout @ roll_prev
        alti_prev = alti if alti_prev is None else alti @ alti_prev
        out["rollout"].append(roll_prev)
        out["resln"].append(resln)
        out["alti"].append(alti_prev)
    return out


def brute_force_value_zeroing(model, batch, head_mask=None):
    """Literally: for each layer and token j, a full forward with j's value zeroed by its own hook."""
    lengths = batch["attention_mask"].sum(1).tolist()
    B, T = batch["attention_mask"].shape
    L = model.config.num_hidden_layers
    result = []
    with torch.no_grad(), gated(model, head_mask):
        ref = model(**batch, output_hidden_states=True).hidden_states
        for layer in range(L):
            scores = np.zeros((B, T, T))
            for j in range(T):
                def zero_j(module, args, output, j=j):
                    output = output.clone()
                    output[:, j] = 0
                    return output

                handle = model.encoder.layer[layer].attention.self.value.register_forward_hook(zero_j)
                try:
                    alt = model(**batch, output_hidden_states=True).hidden_states[layer + 1]
                finally:
                    handle.remove()
                for b, n in enumerate(lengths):
                    if j >= n:
                        continue
                    for i in range(n):
                        a, o = alt[b, i].double(), ref[layer + 1][b, i].double()
                        scores[b, i, j] = 1.0 - float(a @ o / (a.norm() * o.norm()))
            for b, n in enumerate(lengths):
                block = scores[b, :n, :n]
                # 0/0 is undefined: a row of rounding-level distances (every head masked) is 0, as in the library
                live = block.max(-1, keepdims=True) > 1e-10
                scores[b, :n, :n] = np.where(live, block / np.where(live, block.sum(-1, keepdims=True), 1.0), 0.0)
            result.append(scores)
    return result


def _captured(model, batch, head_mask=None, kinds=KINDS):
    with torch.no_grad(), MapCapture(model, kinds=kinds, head_mask=head_mask) as cap:
        model(**batch)
        return cap.pop()


def _max_error(got_layers, want_layers, lengths, kind):
    err = 0.0
    for lm, want in zip(got_layers, want_layers):
        got = lm.maps[kind][:, 0].double().numpy()
        for b, n in enumerate(lengths):
            err = max(err, float(np.abs(got[b, :n, :n] - want[b, :n, :n]).max()))
    return err


MASK = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=np.float32)  # layer 1: every head masked


@pytest.fixture(scope="module")
def model():
    return tiny_bert(seed=3)


@pytest.mark.parametrize("head_mask", [None, MASK], ids=["all-heads", "masked"])
def test_rollout_resln_alti_match_brute_force(model, head_mask, record_property):
    batch = _batch()
    lengths = batch["attention_mask"].sum(1).tolist()
    want = brute_force(model, batch, head_mask)
    if head_mask is None:  # the hand-made layers are the model's layers
        with torch.no_grad():
            hidden = model(**batch, output_hidden_states=True).hidden_states
        for layer, out in enumerate(want["layer_out"]):
            for b, n in enumerate(lengths):
                assert torch.allclose(out[b, :n].float(), hidden[layer + 1][b, :n], atol=1e-5)
    got = _captured(model, batch, head_mask)
    for kind in ("rollout", "resln", "alti"):
        err = _max_error(got, want[kind], lengths, kind)
        record_property(f"max_abs_error_{kind}", err)
        print(f"{kind} ({'masked' if head_mask is not None else 'all heads'}): max abs error {err:.2e}")
        assert err <= TOL, (kind, err)


@pytest.mark.parametrize("head_mask", [None, MASK], ids=["all-heads", "masked"])
def test_value_zeroing_matches_zeroing_one_value_at_a_time(model, head_mask, record_property):
    batch = _batch(seed=1)
    lengths = batch["attention_mask"].sum(1).tolist()
    want = brute_force_value_zeroing(model, batch, head_mask)
    got = _captured(model, batch, head_mask, kinds=("valuezero",))
    err = _max_error(got, want, lengths, "valuezero")
    record_property("max_abs_error_valuezero", err)
    print(f"valuezero ({'masked' if head_mask is not None else 'all heads'}): max abs error {err:.2e}")
    if head_mask is not None:  # every head of layer 1 masked: zeroing a value changes nothing there
        assert float(got[1].maps["valuezero"].abs().max()) == 0.0
    assert err <= TOL


def test_layer_kinds_are_row_stochastic_and_shaped(model):
    batch = _batch()
    lengths = batch["attention_mask"].sum(1).tolist()
    layers = _captured(model, batch)
    for lm in layers:
        assert lm.head_ids == [0, 1, 2, 3]
        assert lm.maps["raw"].shape == (3, 4, 9, 9)
        for kind in LAYER_KINDS:
            assert lm.maps[kind].shape == (3, 1, 9, 9)
            assert bool((lm.maps[kind] >= 0).all())
        for kind in ("rollout", "alti", "valuezero"):
            for b, n in enumerate(lengths):
                rows = lm.maps[kind][b, 0, :n, :n].sum(-1)
                torch.testing.assert_close(rows, torch.ones(n), atol=1e-5, rtol=0)


def test_resln_decomposition_sums_to_the_layernorm_output(model):
    """Σ_j g_i(z_ij) + g_i(b_O) + β = LN(y_i) exactly (the linear LayerNorm decomposition of Kobayashi et al.)."""
    from attnpatterns.extraction import mixing

    batch = _batch()
    layers = _by_hand(model, batch, None)
    L0 = layers[0]
    ln = model.encoder.layer[0].attention.output.LayerNorm
    gamma = ln.weight.double()
    alpha = L0["alpha"]
    fc = mixing.ln_linear(L0["f"], gamma)
    xc = mixing.ln_linear(L0["x"], gamma)
    s = L0["scale"]
    total = (torch.einsum("bhij,bjhd->bid", alpha, fc) + xc) / s[..., None]
    bias = mixing.ln_linear(model.encoder.layer[0].attention.output.dense.bias.double(), gamma) / s[..., None]
    recon = total + bias + ln.bias.double()
    n = batch["attention_mask"].sum(1)
    for b in range(3):
        assert torch.allclose(recon[b, : n[b]], L0["out"][b, : n[b]], atol=1e-10)


def test_unknown_kind_is_refused(model):
    with pytest.raises(ValueError, match="rollout"):
        MapCapture(model, kinds=("attnflow",))


def test_surgery_gives_the_maps_of_the_gated_model():
    """Heads removed from the weights (a whole layer's included) give the maps that masking them gives."""
    from attnpatterns.models.surgery import prune_heads

    pruned = tiny_bert(seed=3)
    batch = _batch()
    masked = _captured(pruned, batch, MASK)
    prune_heads(pruned, {0: [1], 1: [0, 1, 2, 3]})
    removed = _captured(pruned, batch)
    for a, b in zip(masked, removed):
        assert a.head_ids == b.head_ids and set(a.maps) == set(b.maps)
        for kind in a.maps:
            torch.testing.assert_close(a.maps[kind], b.maps[kind], atol=1e-6, rtol=0)
