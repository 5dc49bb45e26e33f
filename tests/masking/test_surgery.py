"""Physically pruned models give the same outputs as masked ones, and save/load keeps the surgery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.masking.gates import gated
from attnpatterns.masking.surgery import physically_prune
from attnpatterns.models import load_model
from attnpatterns.models.adapter import get_adapter
from attnpatterns.models.surgery import count_parameters, prune_heads
from tests.helpers import save_tiny_model, tiny_bert


def _inputs():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1000, 3000, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in one row
    return {"input_ids": ids, "attention_mask": mask}


def _masks():
    head = np.ones((2, 4), np.float32)
    head[0, [0, 2]] = 0  # two heads of layer 0
    head[1, :] = 0  # every head of layer 1
    mlp = np.array([0, 1], np.float32)  # the MLP of layer 0
    return head, mlp


@pytest.mark.parametrize("classification", [False, True])
def test_physically_pruned_equals_masked(classification):
    model = tiny_bert(classification=classification)
    head, mlp = _masks()
    x = _inputs()
    with torch.no_grad(), gated(model, head, mlp):
        want = model(**x)
    pruned = physically_prune(tiny_bert(classification=classification), head, mlp)
    with torch.no_grad():
        got = pruned(**x)
    key = "logits" if classification else "last_hidden_state"
    torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)
    adapter = get_adapter(pruned)
    assert adapter.head_ids(0) == [1, 3] and adapter.head_ids(1) == []
    assert adapter.layer(0).query.weight.shape == (2 * adapter.head_dim, 32)
    assert adapter.layer(1).attn_out.weight.shape == (32, 0)
    assert adapter.layer(0).ffn_in.weight.shape[0] == 0
    assert count_parameters(pruned) < count_parameters(model)


def test_gates_still_work_after_surgery_by_original_id():
    """Masking head 3 (original id) of a layer that lost heads 0 and 2 equals removing it too."""
    head, _ = _masks()
    x = _inputs()
    model = prune_heads(tiny_bert(), {0: [0, 2]})
    more = head.copy()
    more[1] = 1
    more[0, 3] = 0
    with torch.no_grad(), gated(model, more):
        got = model(**x).last_hidden_state
        want = prune_heads(tiny_bert(), {0: [0, 2, 3]})(**x).last_hidden_state
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_pruning_twice_is_idempotent_and_bad_ids_are_refused():
    model = prune_heads(tiny_bert(), {0: [1]})
    prune_heads(model, {0: [1]})
    assert get_adapter(model).head_ids(0) == [0, 2, 3]
    with pytest.raises(ValueError, match="no head"):
        prune_heads(model, {0: [7]})


@pytest.mark.parametrize("classification", [False, True])
def test_save_and_load_physically_pruned(tmp_path, classification):
    folder = save_tiny_model(tmp_path / "m", classification=classification)
    loaded = load_model(folder)
    head, mlp = _masks()
    x = _inputs()
    physically_prune(loaded.model, head, mlp)
    with torch.no_grad():
        want = loaded.model(**x)
        want_encoder = loaded.model.base_model(**x).last_hidden_state if classification else None
    loaded.model.save_pretrained(tmp_path / "pruned")
    loaded.tokenizer.save_pretrained(tmp_path / "pruned")
    back = load_model(tmp_path / "pruned")
    assert back.adapter.head_ids(0) == [1, 3] and back.adapter.head_ids(1) == []
    with torch.no_grad():
        got = back.model(**x)
    key = "logits" if classification else "last_hidden_state"
    torch.testing.assert_close(got[key], want[key])
    if classification:  # the encoder of a pruned classifier loads on its own as well
        enc = load_model(tmp_path / "pruned", head="encoder")
        assert not enc.is_classifier and enc.adapter.head_ids(0) == [1, 3]
        with torch.no_grad():
            torch.testing.assert_close(enc.model(**x).last_hidden_state, want_encoder)
