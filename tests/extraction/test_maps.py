"""The map maths: raw maps equal the model's attentions, normed maps equal the materialised Kobayashi formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.constants import MAP_KINDS
from attnpatterns.extraction import MapCapture
from attnpatterns.masking.files import MaskError
from tests.helpers import tiny_bert


def _batch(seed=0, B=3, T=9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0  # padding in one example
    return {"input_ids": ids, "attention_mask": mask}


def _brute_force_normed(model, batch):
    """‖α_ij · f_h(x_j)‖ with α·f(x) materialised: (B, H, T, T, hidden) — the thing the library never builds."""
    out = model(**batch, output_attentions=True, output_hidden_states=True)
    cfg = model.config
    H, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    result = []
    for layer in range(cfg.num_hidden_layers):
        x = out.hidden_states[layer].double()  # input of this layer, (B, T, hidden)
        att = model.encoder.layer[layer].attention
        v = x @ att.self.value.weight.double().T + att.self.value.bias.double()  # (B, T, H*d)
        w_o = att.output.dense.weight.double()  # (hidden, H*d)
        alpha = out.attentions[layer].double()  # (B, H, T, T)
        maps = []
        for h in range(H):
            f = v[..., h * d : (h + 1) * d] @ w_o[:, h * d : (h + 1) * d].T  # (B, T, hidden)
            weighted = alpha[:, h, :, :, None] * f[:, None, :, :]  # (B, T, T, hidden)
            maps.append(torch.linalg.vector_norm(weighted, dim=-1))
        result.append(torch.stack(maps, dim=1))  # (B, H, T, T)
    return out, result


def test_raw_maps_are_the_attention_probabilities():
    model = tiny_bert()
    batch = _batch()
    with torch.no_grad(), MapCapture(model, kinds=("raw",)) as cap:
        out = model(**batch, output_attentions=True)
        layers = cap.pop()
    for layer, lm in enumerate(layers):
        assert lm.head_ids == [0, 1, 2, 3]
        torch.testing.assert_close(lm.maps["raw"], out.attentions[layer], rtol=0, atol=0)


def test_normed_maps_match_brute_force_formula():
    model = tiny_bert(hidden_size=48, num_attention_heads=6, intermediate_size=40)
    batch = _batch(seed=1)
    with torch.no_grad():
        out, expected = _brute_force_normed(model, batch)
        with MapCapture(model, kinds=("raw", "normed")) as cap:
            model(**batch)
            layers = cap.pop()
    for layer, lm in enumerate(layers):
        got = lm.maps["normed"].double()
        want = expected[layer]
        rel = (got - want).abs().max() / want.abs().max()
        assert rel <= 1e-5, f"layer {layer}: relative error {rel:.2e}"
        # the normed map is never the raw one: the value norms differ by token
        assert not torch.allclose(lm.maps["normed"], lm.maps["raw"])


def test_masked_heads_produce_no_map_and_keep_original_ids():
    model = tiny_bert()
    head_mask = np.ones((2, 4), np.float32)
    head_mask[0, [1, 3]] = 0
    head_mask[1, :] = 0
    with torch.no_grad(), MapCapture(model, head_mask=head_mask) as cap:
        model(**_batch())
        layers = cap.pop()
    assert layers[0].head_ids == [0, 2]
    assert layers[0].maps["raw"].shape[1] == 2
    assert layers[1].head_ids == [] and layers[1].maps == {}


def test_masked_maps_come_from_the_gated_model():
    """Masking a layer-0 head changes the inputs of layer 1, so layer-1 maps must change too."""
    model = tiny_bert()
    batch = _batch()
    with torch.no_grad():
        with MapCapture(model) as cap:
            model(**batch)
            full = cap.pop()
        mask = np.ones((2, 4), np.float32)
        mask[0, 0] = 0
        with MapCapture(model, head_mask=mask) as cap:
            model(**batch)
            masked = cap.pop()
    torch.testing.assert_close(full[0].maps["raw"][:, 1:], masked[0].maps["raw"])
    assert not torch.allclose(full[1].maps["raw"], masked[1].maps["raw"])


def test_wrong_mask_shape_is_a_clear_error():
    model = tiny_bert()
    with pytest.raises(MaskError, match=r"2 layers x 4 heads"):
        MapCapture(model, head_mask=np.ones((12, 12)))
    with pytest.raises(MaskError, match=r"shape \(2,\)"):
        MapCapture(model, mlp_mask=np.ones(3))


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="subset"):
        MapCapture(tiny_bert(), kinds=("raw", "gradient"))


@pytest.mark.parametrize("kinds", [("raw",), ("raw", "normed"), ("rollout",), ("resln", "alti"), ("valuezero",),
                                   MAP_KINDS])
@pytest.mark.parametrize("masked", [False, True])
def test_run_stops_after_the_last_map_with_the_same_maps(kinds, masked):
    """``run`` cuts the forward pass once the last layer's maps exist: the same maps, bit for bit, as a capture
    around the whole forward pass, raw maps equal to the model's own attentions, and the work after the last map
    (the last layer's feed-forward block unless value zeroing needs the layer's output, the classifier) never
    runs."""
    model = tiny_bert(classification=True, seed=5)
    batch = _batch(seed=2)
    head_mask = None
    if masked:  # a masked head in layer 0, every head of the last layer masked
        head_mask = np.ones((2, 4), np.float32)
        head_mask[0, 2] = 0
        head_mask[1, :] = 0
    calls = {"ffn": 0, "classifier": 0}

    def count(name):
        return lambda *args: calls.__setitem__(name, calls[name] + 1)

    hooks = [model.bert.encoder.layer[-1].intermediate.register_forward_hook(count("ffn")),
             model.classifier.register_forward_hook(count("classifier"))]
    with torch.no_grad():
        with MapCapture(model, kinds=kinds, head_mask=head_mask) as cap:
            model(**batch)
            whole = cap.pop()
        ffn_whole = calls["ffn"]  # 1, plus value zeroing's replays of the layer
        assert ffn_whole >= 1 and calls["classifier"] == 1
        with MapCapture(model, kinds=kinds, head_mask=head_mask) as cap:
            cut = cap.run(**batch)
        # value zeroing needs each layer's output (and replays it): only the classifier is cut then
        assert calls == {"ffn": ffn_whole + (ffn_whole if "valuezero" in kinds else 0), "classifier": 1}
        for h in hooks:
            h.remove()
        # a brute-force reference: the attentions of a plain forward of the same model (the gates as a mask on α
        # are checked elsewhere; here only unmasked runs compare with them)
        plain = model(**batch, output_attentions=True)
        assert not cap._handles and not cap._stopping
        assert torch.equal(model(**batch).logits, plain.logits)  # nothing left behind in the model
    for a, b in zip(whole, cut):
        assert a.head_ids == b.head_ids and a.maps.keys() == b.maps.keys()
        for kind in a.maps:
            assert torch.equal(a.maps[kind], b.maps[kind]), kind
    if "raw" in kinds and not masked:
        for layer, lm in enumerate(cut):
            assert torch.equal(lm.maps["raw"], plain.attentions[layer])


def test_run_needs_the_hooks_installed():
    cap = MapCapture(tiny_bert())
    with pytest.raises(RuntimeError, match="install the capture first"):
        cap.run(**_batch())
