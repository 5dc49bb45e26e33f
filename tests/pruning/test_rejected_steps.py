"""A rejected pruning step skips its backward passes, and nothing else changes to the bit.

The reference here is written separately from the library's schedule: it prunes step by step with
``gate_gradients`` run the plain way (every batch's backward right after its forward, importance computed for every
step, rejected ones included) and ranks as the paper's code does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.pruning import importance as importance_module
from attnpatterns.pruning.importance import ImportanceConfig, gate_gradients, normalize
from attnpatterns.pruning.structured import StructuredConfig, structured_prune
from attnpatterns.tasks.batches import encode
from attnpatterns.tasks.metrics import compute_metrics
from tests.helpers import bundled_model_path, tiny_bert
from tests.pruning.conftest import make_task


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path())


def _features(tokenizer, task):
    return encode(tokenizer, list(task.dev), 16, regression=False)


@pytest.mark.parametrize("variant", ["per_example", "bertology", "michel"])
def test_deferred_backward_gives_the_same_sums_to_the_bit(tokenizer, variant, monkeypatch):
    model = tiny_bert(classification=True)
    feats = _features(tokenizer, make_task(n_train=4, n_dev=20))
    sub = Subnetwork(np.array([[1, 0, 1, 1], [1, 1, 1, 0]], np.float32), np.array([1, 0], np.float32))
    plain = gate_gradients(model, feats, 2, sub, batch_size=6, variant=variant)
    asked = []
    deferred = gate_gradients(model, feats, 2, sub, batch_size=6, variant=variant,
                              needed=lambda logits: asked.append(logits.copy()) or True)
    assert len(asked) == 1 and np.array_equal(asked[0], plain[3])  # asked once, with every example's logits
    for a, b in zip(plain, deferred):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    # over the graph budget it backpropagates as it goes, with the same result
    monkeypatch.setattr(importance_module, "GRAPH_BUDGET_BYTES", 0)
    over = gate_gradients(model, feats, 2, sub, batch_size=6, variant=variant, needed=lambda logits: True)
    for a, b in zip(plain, over):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_not_needed_skips_every_backward(tokenizer, monkeypatch):
    model = tiny_bert(classification=True)
    feats = _features(tokenizer, make_task(n_train=4, n_dev=20))
    plain = gate_gradients(model, feats, 2, batch_size=6)
    calls = []
    real = torch.Tensor.backward
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    head, mlp, n_tokens, logits, loss = gate_gradients(model, feats, 2, batch_size=6, needed=lambda logits: False)
    assert calls == [] and head is None and mlp is None
    assert np.array_equal(logits, plain[3]) and n_tokens == plain[2] and loss == plain[4]
    gate_gradients(model, feats, 2, batch_size=6, needed=lambda logits: True)
    assert len(calls) == 4  # 20 examples in batches of 6


def _reference_prune(model, tokenizer, task, config: StructuredConfig):
    """The s-pruning schedule written out directly: importance of every assessed step, rejected or not."""
    feats = encode(tokenizer, list(task.dev), config.max_length, regression=False)
    labels = np.array([e.label for e in task.dev])
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads

    def assess(head, mlp):
        head_raw, mlp_raw, n_tok, logits, _ = gate_gradients(model, feats, 2, Subnetwork(head, mlp),
                                                             config.batch_size)
        score = compute_metrics(logits, labels, 2, "accuracy")["accuracy"]
        return (score, *normalize(head_raw, mlp_raw, n_tok, ImportanceConfig()))

    head, mlp = np.ones((L, H), np.float32), np.ones(L, np.float32)
    full, head_imp, mlp_imp = assess(head, mlp)
    scores = [full]
    for phase in config.phases:
        while True:
            n_heads = {"joint": max(1, int(L * H * config.head_fraction)), "mlps": 0}.get(
                phase, max(1, int(L * H * config.head_fraction)) // 2)
            n_mlps = 0 if phase == "heads" else 1
            if not n_heads and not n_mlps:  # the reference's heads phase below 20 heads: an empty selection
                break
            new_head, new_mlp = head.copy(), mlp.copy()
            kept_heads = [i for i in np.argsort(head_imp.reshape(-1), kind="stable") if head.reshape(-1)[i] == 1]
            kept_mlps = [i for i in np.argsort(mlp_imp, kind="stable") if mlp[i] == 1]
            if (n_heads and not kept_heads) or (n_mlps and not kept_mlps):
                break
            new_head.reshape(-1)[kept_heads[:n_heads]] = 0
            new_mlp[kept_mlps[:n_mlps]] = 0
            score, new_head_imp, new_mlp_imp = assess(new_head, new_mlp)
            scores.append(score)
            if score < config.threshold * full - 1e-9 * abs(config.threshold * full):
                break
            head, mlp, head_imp, mlp_imp = new_head, new_mlp, new_head_imp, new_mlp_imp
    return head, mlp, scores


def _trained(tokenizer, task):
    """The tiny classifier after a few full-batch Adam steps on the toy task (it then scores ~1.0 on dev)."""
    model = tiny_bert(classification=True).train()
    enc = tokenizer([e.text_a for e in task.train], padding=True, return_tensors="pt")
    labels = torch.tensor([e.label for e in task.train])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        model(**enc, labels=labels).loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_structured_prune_equals_the_reference_and_skips_rejected_backward(tokenizer, seed, monkeypatch):
    task = make_task(n_train=48, n_dev=24, seed=seed)
    model = _trained(tokenizer, task)
    config = StructuredConfig(head_fraction=0.25, max_length=16, batch_size=8)
    head, mlp, scores = _reference_prune(model, tokenizer, task, config)

    calls = []
    real = torch.Tensor.backward
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    result = structured_prune(model, tokenizer, task, config)
    assert np.array_equal(result.head_mask, head) and np.array_equal(result.mlp_mask, mlp)
    assert [s["score"] for s in result.steps] == scores
    rejected = sum(not s["passed"] for s in result.steps)
    assert rejected >= 1 and len(result.steps) - rejected >= 2, [s["passed"] for s in result.steps]
    assert len(calls) == 3 * (len(result.steps) - rejected)  # 24 dev examples in batches of 8; none when rejected
