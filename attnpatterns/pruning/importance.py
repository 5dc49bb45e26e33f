"""Importance of heads and MLPs (Michel et al. 2019): |∂L/∂ξ| accumulated over a dataset.

ξ_{l,h} is head h's gate in layer l and ν_l the MLP gate of :mod:`attnpatterns.pruning.gates`, both at their current
mask values (1 kept, 0 masked). The importance of a component is ``Σ_x |∂L(x)/∂ξ|`` over the examples x, as in the
definition (with ``per_example=False``, the absolute value is taken per batch of the mean loss instead, which is
what the paper's code computes when its batch size is above 1).

Per-example gradients come from one ordinary backward pass per batch: the gradient of a scalar gate that multiplies
a tensor c is ``<c, ∂L/∂(ξ c)>``, summed over that example's tokens and the head's features, and in an encoder one
example's loss depends on its own rows only. Hooks capture c before the gate and ``∂L/∂(ξ c)`` after it. Model
parameters are frozen during the pass, so backward computes no weight gradients.

The paper's normalisation is the default, each part an option: head scores divided by the L2 norm of their layer,
MLP scores divided by the number of (non-padding) tokens, then both min-max scaled to [0, 1] over the whole model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.models.adapter import get_adapter, model_device
from attnpatterns.pruning.batches import encode, iterate_batches
from attnpatterns.pruning.evaluation import check_classifier
from attnpatterns.pruning.gates import Gates
from attnpatterns.pruning.subnetwork import Subnetwork, weights_zeroed


@dataclass(frozen=True)
class ImportanceConfig:
    """How raw gradient magnitudes become importance scores (defaults: the paper's)."""

    normalize_heads_by_layer: bool = True  # divide each layer's head scores by their L2 norm
    normalize_mlps_by_tokens: bool = True  # divide MLP scores by the number of tokens seen
    normalize_global: bool = True  # min-max scale heads (and, separately, MLPs) to [0, 1]
    per_example: bool = True  # |gradient| per example (the definition); False: per batch of the mean loss

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Importance:
    head: np.ndarray  # (L, H) normalised scores over original head ids
    mlp: np.ndarray  # (L,)
    head_raw: np.ndarray  # (L, H) accumulated |gradients|, before normalisation
    mlp_raw: np.ndarray  # (L,)
    n_examples: int
    n_tokens: int
    logits: np.ndarray  # (N, C) model outputs of the same pass (eval mode), in example order
    loss: float  # mean loss over the examples


def normalize(head_raw: np.ndarray, mlp_raw: np.ndarray, n_tokens: int, config: ImportanceConfig):
    """Apply the configured normalisations; returns ``(head, mlp)`` float64 arrays."""
    head = np.asarray(head_raw, np.float64).copy()
    mlp = np.asarray(mlp_raw, np.float64).copy()
    if config.normalize_mlps_by_tokens and n_tokens > 0:
        mlp /= n_tokens
    if config.normalize_heads_by_layer:
        norm = np.sqrt((head**2).sum(-1, keepdims=True))  # (L, 1)
        head /= norm + 1e-20
    if config.normalize_global:
        head = _minmax(head)
        mlp = _minmax(mlp)
    return head, mlp


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


@contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _GateGradients:
    """Hooks that turn one backward pass into per-example gradients of every head and MLP gate."""

    def __init__(self, model: nn.Module):
        self.adapter = get_adapter(model)
        L, H = self.adapter.num_layers, self.adapter.num_heads
        self.L, self.H = L, H
        self.head: torch.Tensor | None = None  # (B, L, H) signed per-example gradients of the current batch
        self.mlp: torch.Tensor | None = None  # (B, L)
        self._raw: dict[tuple[str, int], torch.Tensor] = {}

    def start_batch(self, batch_size: int, device) -> None:
        self.head = torch.zeros(batch_size, self.L, self.H, device=device, dtype=torch.float64)
        self.mlp = torch.zeros(batch_size, self.L, device=device, dtype=torch.float64)
        self._raw.clear()

    def install(self, stack: ExitStack) -> None:
        """Call after the gates are installed: "before" hooks are prepended, "after" hooks appended."""
        for i in range(self.L):
            mods = self.adapter.layer(i)
            stack.callback(mods.attn_out.register_forward_pre_hook(self._before_head(i), prepend=True).remove)
            stack.callback(mods.attn_out.register_forward_pre_hook(self._after_head(i)).remove)
            stack.callback(mods.ffn_out.register_forward_hook(self._before_mlp(i), prepend=True).remove)
            stack.callback(mods.ffn_out.register_forward_hook(self._after_mlp(i)).remove)

    def _before_head(self, layer: int):
        def hook(module, args):
            self._raw[("head", layer)] = args[0].detach()  # context before the gate: (B, T, H_cur * d)

        return hook

    def _after_head(self, layer: int):
        ids = self.adapter.head_ids(layer)

        def hook(module, args):
            gated = args[0]
            raw = self._raw.pop(("head", layer))
            if gated.requires_grad and ids:

                def grad_hook(grad):  # grad: (B, T, H_cur * d) = ∂L/∂(ξ c)
                    B, T, _ = grad.shape
                    per = (raw * grad).view(B, T, len(ids), -1).sum(dim=(1, 3))  # (B, H_cur)
                    self.head[:, layer, ids] += per.double()

                gated.register_hook(grad_hook)

        return hook

    def _before_mlp(self, layer: int):
        def hook(module, args, output):
            self._raw[("mlp", layer)] = output.detach()  # FFN output before the gate: (B, T, hidden)

        return hook

    def _after_mlp(self, layer: int):
        def hook(module, args, output):
            raw = self._raw.pop(("mlp", layer))
            if output.requires_grad:

                def grad_hook(grad):
                    self.mlp[:, layer] += (raw * grad).sum(dim=(1, 2)).double()  # (B,)

                output.register_hook(grad_hook)

        return hook


def _loss_sum(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float(), reduction="sum")
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def gate_gradients(
    model: nn.Module,
    features: Sequence[dict],
    num_labels: int,
    subnetwork: Subnetwork | None = None,
    batch_size: int = 32,
    per_example: bool = True,
    pad_token_id: int = 0,
    progress: Callable[[int], None] | None = None,
):
    """Accumulate |∂L/∂gate| over ``features``; returns ``(head_raw, mlp_raw, n_tokens, logits, mean_loss)``."""
    sub = subnetwork or Subnetwork()
    adapter = get_adapter(model)
    L, H = adapter.num_layers, adapter.num_heads
    device = model_device(model)
    head_raw = torch.zeros(L, H, dtype=torch.float64, device=device)
    mlp_raw = torch.zeros(L, dtype=torch.float64, device=device)
    logits_out: list[tuple[np.ndarray, np.ndarray]] = []
    n_tokens, total_loss = 0, 0.0
    capture = _GateGradients(model)
    was_training = model.training
    model.eval()  # dropout off: importance of the model as it is used
    try:
        with ExitStack() as stack:
            stack.enter_context(_frozen(model))
            stack.enter_context(Gates(model, sub.head_mask, sub.mlp_mask, requires_grad=True))
            if sub.weight_masks is not None:
                stack.enter_context(weights_zeroed(model, sub.weight_masks))
            capture.install(stack)
            for idx, batch in iterate_batches(features, batch_size, device, pad_token_id):
                labels = batch.pop("labels")
                capture.start_batch(len(idx), device)
                logits = model(**batch).logits
                loss = _loss_sum(logits, labels, num_labels)
                loss.backward()
                if per_example:
                    head_raw += capture.head.abs().sum(0)
                    mlp_raw += capture.mlp.abs().sum(0)
                else:  # |∂(mean loss of the batch)/∂ξ|, as the reference code with batch size > 1
                    head_raw += (capture.head.sum(0) / len(idx)).abs()
                    mlp_raw += (capture.mlp.sum(0) / len(idx)).abs()
                n_tokens += int(batch["attention_mask"].sum())
                total_loss += float(loss.detach())
                logits_out.append((idx, logits.detach().float().cpu().numpy()))
                if progress is not None:
                    progress(len(idx))
    finally:
        model.train(was_training)
    logits = np.zeros((len(features), logits_out[0][1].shape[1]), np.float32)
    for idx, block in logits_out:
        logits[idx] = block
    return head_raw.cpu().numpy(), mlp_raw.cpu().numpy(), n_tokens, logits, total_loss / len(features)


def compute_importance(
    model: nn.Module,
    tokenizer,
    examples: Sequence[TextExample],
    num_labels: int,
    subnetwork: Subnetwork | None = None,
    config: ImportanceConfig = ImportanceConfig(),
    max_length: int = 128,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> Importance:
    """Head and MLP importance of ``model`` (with ``subnetwork`` masked) over labelled ``examples``."""
    if not examples:
        raise InputError("importance needs at least one labelled example.")
    check_classifier(model, num_labels, "importance scoring")
    if any(e.label is None for e in examples):
        raise InputError("importance needs labelled examples (the loss needs a label).")
    features = encode(tokenizer, examples, max_length, regression=num_labels == 1)
    head_raw, mlp_raw, n_tokens, logits, loss = gate_gradients(
        model, features, num_labels, subnetwork, batch_size, config.per_example, tokenizer.pad_token_id or 0, progress
    )
    head, mlp = normalize(head_raw, mlp_raw, n_tokens, config)
    return Importance(head, mlp, head_raw, mlp_raw, len(examples), n_tokens, logits, loss)
