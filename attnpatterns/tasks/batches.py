"""Tokenised examples and padded batches, shared by fine-tuning, evaluation and importance passes.

Batches are padded to their longest member (not to ``max_length``), and evaluation sorts examples by length first,
so short texts cost what they need: on CPU, padding is most of the time spent on short built-in texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from attnpatterns.data.records import InputError, TextExample


def encode(tokenizer, examples: Sequence[TextExample], max_length: int, regression: bool = False) -> list[dict]:
    """One feature dict per example (``input_ids``, ``attention_mask``, maybe ``token_type_ids``, ``labels``)."""
    if not examples:
        return []
    pairs = [e.is_pair for e in examples]
    if any(pairs) and not all(pairs):
        raise InputError("the examples mix single texts and sentence pairs; keep one kind per task.")
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if pairs[0] else None
    enc = tokenizer(a, b, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    features = []
    for i, example in enumerate(examples):
        feature = {k: enc[k][i] for k in keys}
        if example.label is not None:
            feature["labels"] = float(example.label) if regression else int(example.label)
        features.append(feature)
    return features


def collate(features: Sequence[dict], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a list of feature dicts to the longest one: tensors of shape (B, T)."""
    width = max(len(f["input_ids"]) for f in features)
    out: dict[str, torch.Tensor] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in features[0]:
            continue
        fill = pad_token_id if key == "input_ids" else 0
        rows = [list(f[key]) + [fill] * (width - len(f[key])) for f in features]
        out[key] = torch.tensor(rows, dtype=torch.long)  # (B, T)
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        dtype = torch.float32 if isinstance(labels[0], float) else torch.long
        out["labels"] = torch.tensor(labels, dtype=dtype)  # (B,)
    return out


def iterate_batches(
    features: Sequence[dict],
    batch_size: int,
    device: torch.device | str,
    pad_token_id: int = 0,
    sort_by_length: bool = True,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(indices, batch)``: ``indices`` are positions in ``features`` so results can be put back in order."""
    if batch_size < 1:
        raise ValueError("batch size must be positive")
    order = np.arange(len(features))
    if sort_by_length:
        order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([features[i] for i in idx], pad_token_id)
        yield idx, {k: v.to(device) for k, v in batch.items()}


class FeatureDataset(torch.utils.data.Dataset):
    """A map-style dataset over feature dicts, for the Hugging Face Trainer."""

    def __init__(self, features: Sequence[dict]):
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]
