"""Each importance variant against a reference written here, from its source, with no code of attnpatterns.

The references run a tiny random BertForSequenceClassification (float64) with an explicit multiplicative mask: a
hook on each layer's attention output projection multiplies head h's slice of the context by its gate, and a hook on
the FFN output multiplies it by the MLP gate (transformers 5 has no ``head_mask``). The loss is the model's own
(``labels=``), the gradients come from autograd on the mask tensors.

- ``bertology``: the loop of ``compute_heads_importance`` in Hugging Face's run_bertology.py, line by line: inputs
  padded to a fixed length (as GlueDataset), batches in order, ``head_mask.grad`` never zeroed, then its
  normalisation; MLPs as in Prasanna et al.'s ``compute_heads_mlps_importance``.
- ``per_example``: one example at a time, ``torch.autograd.grad`` of its loss, absolute values summed.
- ``michel``: one gate per token (a (B, T, L, H) mask tensor), whose gradient times the gate's value is each token's
  share (0 at a masked gate, whose context the code has zeroed); absolute values summed, divided by the token count,
  normalised per layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning.importance import ImportanceConfig, compute_importance
from tests.helpers import tiny_bert
from tests.pruning.test_importance import TEXTS, _examples, tokenizer  # noqa: F401 (tokenizer: a fixture)

BATCH = 2  # batches of 2, 2 and 1: the smaller last batch matters for the batch-mean loss
PAD_TO = 24
TOL = 1e-5
LAYERS = 3  # three MLP scores, so that their min-max scaling is not trivially {0, 1}


def _masks(masked: bool) -> tuple[np.ndarray, np.ndarray]:
    head, mlp = np.ones((LAYERS, 4), np.float32), np.ones(LAYERS, np.float32)
    if masked:
        head[0, 1] = head[1, 3] = head[2, 0] = 0
        mlp[1] = 0
    return head, mlp


def _install(model, head_gate, mlp_gate) -> list:
    """Hooks applying ``head_gate(layer)`` (broadcast to (B, T, H)) and ``mlp_gate(layer)`` (to (B, T))."""
    H = model.config.num_attention_heads
    handles = []
    for l, layer in enumerate(model.bert.encoder.layer):

        def heads(module, args, l=l):
            context = args[0]  # (B, T, H * d)
            B, T, _ = context.shape
            gated = context.view(B, T, H, -1) * head_gate(l)[..., None]  # (B, T, H, d)
            return (gated.view(B, T, -1), *args[1:])

        def mlp(module, args, output, l=l):
            return output * mlp_gate(l)[..., None]  # (B, T, hidden)

        handles.append(layer.attention.output.dense.register_forward_pre_hook(heads))
        handles.append(layer.output.dense.register_forward_hook(mlp))
    return handles


def _remove(handles) -> None:
    for handle in handles:
        handle.remove()


def _minmax(x: torch.Tensor) -> torch.Tensor:
    return (x - x.min()) / (x.max() - x.min())


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    exponent = 2
    norm_by_layer = torch.pow(torch.pow(x, exponent).sum(-1), 1 / exponent)
    return x / (norm_by_layer.unsqueeze(-1) + 1e-20)


def _batches(tokenizer):
    """GlueDataset-style: every example padded to PAD_TO, batches in file order (SequentialSampler)."""
    for start in range(0, len(TEXTS), BATCH):
        chunk = TEXTS[start : start + BATCH]
        enc = tokenizer([t for t, _ in chunk], padding="max_length", max_length=PAD_TO, return_tensors="pt")
        enc["labels"] = torch.tensor([y for _, y in chunk])
        yield dict(enc)


def _bertology_reference(model, tokenizer, head_mask0, mlp_mask0):
    """run_bertology.py's compute_heads_importance (+ Prasanna et al.'s MLP scores), line by line."""
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    head_importance = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    mlp_importance = torch.zeros(n_layers, dtype=torch.float64)
    head_mask = torch.tensor(head_mask0, dtype=torch.float64).clone().detach()
    head_mask.requires_grad_(requires_grad=True)
    mlp_mask = torch.tensor(mlp_mask0, dtype=torch.float64).clone().detach()
    mlp_mask.requires_grad_(requires_grad=True)
    handles = _install(model, lambda l: head_mask[l], lambda l: mlp_mask[l])
    tot_tokens = 0.0
    try:
        for inputs in _batches(tokenizer):
            outputs = model(**inputs)
            loss = outputs[0]  # mean over the batch
            loss.backward()  # head_mask.grad is never zeroed: it accumulates over batches
            head_importance += head_mask.grad.abs().detach()
            mlp_importance += mlp_mask.grad.abs().detach()
            tot_tokens += inputs["attention_mask"].float().detach().sum().data
    finally:
        _remove(handles)
        model.zero_grad(set_to_none=True)
    raw = head_importance.clone(), mlp_importance.clone()
    head_importance /= tot_tokens
    head_importance = _layer_norm(head_importance)
    head_importance = _minmax(head_importance)
    mlp_importance /= tot_tokens
    mlp_importance = _minmax(mlp_importance)
    return raw, (head_importance, mlp_importance), tot_tokens


def _per_example_reference(model, tokenizer, head_mask0, mlp_mask0):
    """Σ_x |∂L(x)/∂ξ|: one example at a time, no padding."""
    head_mask = torch.tensor(head_mask0, dtype=torch.float64, requires_grad=True)
    mlp_mask = torch.tensor(mlp_mask0, dtype=torch.float64, requires_grad=True)
    head_sum, mlp_sum = torch.zeros_like(head_mask), torch.zeros_like(mlp_mask)
    handles = _install(model, lambda l: head_mask[l], lambda l: mlp_mask[l])
    try:
        for text, label in TEXTS:
            enc = dict(tokenizer([text], return_tensors="pt"))
            loss = model(**enc, labels=torch.tensor([label])).loss
            g_head, g_mlp = torch.autograd.grad(loss, [head_mask, mlp_mask])
            head_sum += g_head.abs()
            mlp_sum += g_mlp.abs()
    finally:
        _remove(handles)
    return head_sum, mlp_sum


def _michel_reference(model, tokenizer, head_mask0, mlp_mask0):
    """Σ_batches Σ_(example, token) |ξ ∂(batch-mean loss)/∂ξ_(example, token)|, per-token gates."""
    L, H = head_mask0.shape
    head_sum, mlp_sum = torch.zeros(L, H, dtype=torch.float64), torch.zeros(L, dtype=torch.float64)
    tot_tokens = 0.0
    for inputs in _batches(tokenizer):
        B, T = inputs["input_ids"].shape
        head_tok = torch.tensor(head_mask0, dtype=torch.float64).expand(B, T, L, H).clone().requires_grad_()
        mlp_tok = torch.tensor(mlp_mask0, dtype=torch.float64).expand(B, T, L).clone().requires_grad_()
        handles = _install(model, lambda l: head_tok[:, :, l], lambda l: mlp_tok[:, :, l])
        try:
            loss = model(**inputs).loss
            g_head, g_mlp = torch.autograd.grad(loss, [head_tok, mlp_tok])  # (B, T, L, H), (B, T, L)
        finally:
            _remove(handles)
        # the code multiplies the *gated* context by its gradient: <ξ c_t, ∂L/∂(ξ c)_t> = ξ ∂L/∂ξ_t, 0 when masked
        head_sum += (g_head * head_tok.detach()).abs().sum(dim=(0, 1))
        mlp_sum += (g_mlp * mlp_tok.detach()).abs().sum(dim=(0, 1))
        tot_tokens += float(inputs["attention_mask"].sum())
    head = _minmax(_layer_norm(head_sum / tot_tokens))
    mlp = _minmax(mlp_sum / tot_tokens)
    return (head_sum, mlp_sum), (head, mlp)


def _errors(got, raw, normalised) -> dict[str, float]:
    """Max abs error of the normalised scores, max relative error of the raw sums."""
    head_raw, mlp_raw = (r.detach().numpy() for r in raw)
    return {
        "head": float(np.abs(got.head - normalised[0].detach().numpy()).max()),
        "mlp": float(np.abs(got.mlp - normalised[1].detach().numpy()).max()),
        "head_raw_rel": float((np.abs(got.head_raw - head_raw) / np.abs(head_raw).max()).max()),
        "mlp_raw_rel": float((np.abs(got.mlp_raw - mlp_raw) / np.abs(mlp_raw).max()).max()),
    }


def _model():
    return tiny_bert(classification=True, num_hidden_layers=LAYERS).double()


def _compute(model, tokenizer, masked, variant):
    head_mask, mlp_mask = _masks(masked)
    config = ImportanceConfig(variant=variant)
    return compute_importance(model, tokenizer, _examples(), 2, Subnetwork(head_mask, mlp_mask), config,
                              batch_size=BATCH)


@pytest.mark.parametrize("masked", [False, True])
def test_bertology_matches_the_script(tokenizer, masked):
    model = _model()
    got = _compute(model, tokenizer, masked, "bertology")
    raw, normalised, tot_tokens = _bertology_reference(model, tokenizer, *_masks(masked))
    errors = _errors(got, raw, normalised)
    assert max(errors.values()) <= TOL, errors
    assert got.n_tokens == tot_tokens
    # the running total matters: the per-example default ranks the heads differently on the same inputs
    default = _compute(model, tokenizer, masked, "per_example")
    assert np.abs(default.head - got.head).max() > 0.01


@pytest.mark.parametrize("masked", [False, True])
def test_per_example_matches_a_loop_over_examples(tokenizer, masked):
    model = _model()
    got = _compute(model, tokenizer, masked, "per_example")
    head_sum, mlp_sum = _per_example_reference(model, tokenizer, *_masks(masked))
    head = _minmax(_layer_norm(head_sum))  # the project's normalisation: no token division of heads
    mlp = _minmax(mlp_sum / got.n_tokens)
    errors = _errors(got, (head_sum, mlp_sum), (head, mlp))
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("masked", [False, True])
def test_michel_matches_per_token_gates(tokenizer, masked):
    model = _model()
    got = _compute(model, tokenizer, masked, "michel")
    raw, normalised = _michel_reference(model, tokenizer, *_masks(masked))
    errors = _errors(got, raw, normalised)
    assert max(errors.values()) <= TOL, errors
    head_mask, mlp_mask = _masks(masked)
    assert np.all(got.head_raw[head_mask == 0] == 0) and np.all(got.mlp_raw[mlp_mask == 0] == 0)
    assert np.all(got.head_raw[head_mask == 1] > 0)


def test_michel_configs_carry_their_revision_so_older_michel_runs_are_not_reused():
    config = ImportanceConfig(variant="michel")
    assert config.to_dict()["masked_gates"] == "zero"
    assert ImportanceConfig.from_dict(config.to_dict()) == config
    assert "masked_gates" not in ImportanceConfig(variant="bertology").to_dict()


def test_bertology_depends_on_batches_and_order(tokenizer):
    """Unlike the default, the script's scores change with the batch size and the order of the examples."""
    model = _model()
    config = ImportanceConfig(variant="bertology")
    base = compute_importance(model, tokenizer, _examples(), 2, config=config, batch_size=2)
    other = compute_importance(model, tokenizer, _examples(), 2, config=config, batch_size=3)
    flipped = compute_importance(model, tokenizer, _examples()[::-1], 2, config=config, batch_size=2)
    assert np.abs(base.head_raw - other.head_raw).max() > 1e-6
    assert np.abs(base.head_raw - flipped.head_raw).max() > 1e-6
    np.testing.assert_allclose(flipped.logits, base.logits[::-1], rtol=1e-6)
