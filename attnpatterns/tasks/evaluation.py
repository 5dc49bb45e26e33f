"""Dev-set scores of a (possibly masked) classifier: the number every pruning step compares with the full model's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.models.adapter import model_device
from attnpatterns.tasks.batches import encode, iterate_batches
from attnpatterns.tasks.metrics import compute_metrics


class NotAClassifierError(ValueError):
    """A model without a sequence-classification head was given where one is needed."""


def check_classifier(model: nn.Module, num_labels: int, what: str = "pruning") -> None:
    """Refuse a bare encoder, or a classifier with the wrong number of outputs, with advice."""
    if not hasattr(model, "classifier") or not type(model).__name__.endswith("ForSequenceClassification"):
        raise NotAClassifierError(
            f"{what} needs a model with a sequence-classification head, but {type(model).__name__} has none. "
            "Fine-tune one first (`attnpatterns finetune --task ...`) and pass its run folder as --model."
        )
    have = int(getattr(model.config, "num_labels", -1))
    if have != num_labels:
        raise NotAClassifierError(
            f"the model's classification head has {have} output(s) but the task needs {num_labels}; "
            "use a model fine-tuned on this task."
        )


@dataclass
class Scores:
    metrics: dict[str, float]
    logits: np.ndarray  # (N, num_labels), in example order
    loss: float

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]


def prepare_dev(model: nn.Module, tokenizer, task, max_length: int, max_examples: int | None = None):
    """Checked, tokenised dev examples of ``task`` for pruning: ``(examples, features, labels)``."""
    from attnpatterns.tasks.task import limit_examples

    check_classifier(model, task.num_labels)
    dev = limit_examples(task.dev, max_examples)
    if not dev:
        raise InputError(f"the dev set of {task.name} is empty; pruning scores every step on it.")
    features = encode(tokenizer, dev, max_length, task.is_regression)
    return dev, features, np.array([f["labels"] for f in features])


@torch.no_grad()
def predict(
    model: nn.Module, features: Sequence[dict], batch_size: int = 64, pad_token_id: int = 0
) -> tuple[np.ndarray, float]:
    """Logits (N, C) in the order of ``features`` and the mean loss (when features carry labels)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    total_loss, n = 0.0, 0
    try:
        for idx, batch in iterate_batches(features, batch_size, device, pad_token_id):
            out = model(**batch)
            chunks.append((idx, out.logits.float().cpu().numpy()))
            if out.loss is not None:
                total_loss += float(out.loss) * len(idx)
                n += len(idx)
    finally:
        model.train(was_training)
    logits = np.zeros((len(features), chunks[0][1].shape[1]), np.float32)
    for idx, block in chunks:
        logits[idx] = block
    return logits, (total_loss / n if n else float("nan"))


def evaluate(
    model: nn.Module,
    tokenizer,
    examples: Sequence[TextExample],
    num_labels: int,
    max_length: int = 128,
    batch_size: int = 64,
    subnetwork: Subnetwork | None = None,
    metric: str | None = None,
) -> Scores:
    """Score ``model`` (with ``subnetwork`` applied, if any) on labelled ``examples``: every metric the task can
    use, or only ``metric``."""
    if not examples:
        raise InputError("the dev set is empty; evaluation needs at least one labelled example.")
    check_classifier(model, num_labels, "evaluation")
    features = encode(tokenizer, examples, max_length, regression=num_labels == 1)
    labels = np.array([f["labels"] for f in features])
    sub = subnetwork or Subnetwork()
    with sub.applied(model):
        logits, loss = predict(model, features, batch_size, tokenizer.pad_token_id or 0)
    return Scores(compute_metrics(logits, labels, num_labels, metric), logits, loss)
