"""Importance of heads and MLPs: |∂L/∂ξ| accumulated over a dataset, in one of three variants.

ξ_{l,h} is head h's gate in layer l and ν_l the MLP gate of :mod:`attnpatterns.masking.gates`, both at their current
mask values (1 kept, 0 masked). The gate of head h multiplies its context vectors c_t (one per token t, before W_O),
so ``∂L/∂ξ = Σ_t <c_t, ∂L/∂(ξ c)_t>``; the MLP gate multiplies the FFN output the same way. The variants differ in
*where the absolute value is taken* and over which loss (sums run over the examples x and their non-padding tokens
t; N_tok is the number of those tokens):

``per_example`` (the default)
    I = Σ_x |∂L(x)/∂ξ|, with L(x) the loss of one example: Michel et al. (2019)'s definition as their paper writes
    it (eq. 2 of "Are Sixteen Heads Really Better than One?", NeurIPS 2019), I_h = E_x |Att_h(x)ᵀ ∂L(x)/∂Att_h(x)|,
    the absolute value of each example's whole inner product (here Σ_t <c_t, ∂L(x)/∂(ξ c)_t> = ∂L(x)/∂ξ), summed
    instead of averaged (the per-layer normalisation removes the 1/N). Neither released code computes it (they take
    the absolute value per batch or per token, the next two variants); it is the default because it does not depend
    on batching, order or padding (examples are sorted by length for speed only).

``bertology``
    The exact accumulation of ``compute_heads_importance`` in Hugging Face's bertology script
    (huggingface/transformers, ``examples/research_projects/bertology/run_bertology.py``, in the releases that still
    had ``head_mask``, up to 4.49), on which Prasanna et al.'s code is built. With batches B_1, B_2, ... in the
    listed order (no sorting) and the batch-mean loss L̄_k = (1/|B_k|) Σ_{x∈B_k} L(x), the script never zeroes
    ``head_mask.grad``, so after batch k the gradient is the running total G_k = Σ_{j<=k} ∂L̄_j/∂ξ and
    ``head_importance += head_mask.grad.abs()`` adds its absolute value: I = (1/N_tok) Σ_k |G_k|
    (``head_importance /= tot_tokens``, where ``tot_tokens`` sums the attention masks). The scores depend on the batch
    size and the order of the examples; Prasanna et al. ran it with ``--batch_size 64`` over the dev set in file
    order. MLPs are scored the same way, as in Prasanna et al.'s ``compute_heads_mlps_importance``
    (sai-prasanna/bert-experiments, ``src/find_head_mlp_masks.py``), which divides the MLP scores (and not the head
    scores) by the token count; head scores are divided as in the Hugging Face script, which changes nothing once
    they are normalised per layer. At a masked gate (ξ = 0) the derivative is still <c, ∂L/∂(ξ c)>, as the script's
    ``head_mask.grad`` is.

``michel``
    Michel et al.'s released code (``calculate_head_importance`` in pmichel31415/pytorch-pretrained-BERT,
    ``examples/classifier_eval.py``, used by pmichel31415/are-16-heads-really-better-than-1), which takes the
    absolute value per *token* rather than per example as the paper writes it:
    I = (1/N_tok) Σ_k Σ_{x∈B_k} Σ_t |<(ξ c)_t, ∂L̄_k/∂(ξ c)_t>|, with the batch-mean loss L̄_k of the code (a factor
    1/|B_k| per example, which layer normalisation removes when all batches are full). The code's context is
    computed from attention probabilities already multiplied by the head mask, so the product uses the gated context
    ξ c and a masked head scores 0 (and adds nothing to its layer's L2 norm). Differences from that code: examples
    in listed order (the code samples them at random, which changes only which examples share the smaller last
    batch); every layer divided by N_tok (the code divides the last layer by the number of examples instead, which
    the per-layer normalisation cancels); the default global min-max scaling, which the code does not do
    (``normalize_global=False`` matches it; min-max keeps the ranking); and MLP gates scored the same way (the paper
    has no MLP scores; a masked MLP scores 0 too).

Per-example and per-token gradients come from one ordinary backward pass per batch: hooks capture c before the gate
and ``∂L/∂(ξ c)`` after it, and in an encoder one example's loss depends on its own rows only. Model parameters are
frozen during the pass, so backward computes no weight gradients.

Normalisation (each part an option, defaults as in Prasanna et al.'s code): head scores divided by the L2 norm of
their layer (plus 1e-20), MLP scores divided by the number of (non-padding) tokens, then heads and MLPs each min-max
scaled to [0, 1] over the whole model. ``bertology`` and ``michel`` also divide head scores by the token count first,
as their code does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.masking.gates import Gates
from attnpatterns.masking.subnetwork import Subnetwork, weights_zeroed
from attnpatterns.models.adapter import get_adapter, model_device
from attnpatterns.tasks.batches import encode, iterate_batches
from attnpatterns.tasks.evaluation import check_classifier

#: Importance variants (see the module docstring): name -> one-line summary, for option help.
VARIANTS = {
    "per_example": "Σ_x |∂L(x)/∂ξ| per example (Michel et al.'s paper formula; the default)",
    "bertology": "Hugging Face run_bertology.py / Prasanna et al.: |running total of batch-mean gradients|",
    "michel": "Michel et al.'s code: |gradient share| per token, batch-mean loss, / tokens",
}
DEFAULT_VARIANT = "per_example"
_HEADS_BY_TOKENS = ("bertology", "michel")  # variants whose code divides head scores by the token count


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"importance variant must be one of {', '.join(VARIANTS)}, not {variant!r}.")
    return variant


@dataclass(frozen=True)
class ImportanceConfig:
    """How importance is accumulated (``variant``) and normalised (defaults: as in Prasanna et al.'s code)."""

    normalize_heads_by_layer: bool = True  # divide each layer's head scores by their L2 norm
    normalize_mlps_by_tokens: bool = True  # divide MLP scores by the number of tokens seen
    normalize_global: bool = True  # min-max scale heads (and, separately, MLPs) to [0, 1]
    variant: str = DEFAULT_VARIANT  # per_example, bertology or michel (module docstring)

    def __post_init__(self) -> None:
        check_variant(self.variant)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.variant == DEFAULT_VARIANT:
            # written as before variants existed, so finished runs keep their fingerprint and are reused
            del out["variant"]
            out["per_example"] = True
        elif self.variant == "michel":
            # masked gates score 0 since this revision: a michel run made before has another fingerprint, so its
            # folder is never resumed or reused as if it were computed the new way
            out["masked_gates"] = "zero"
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ImportanceConfig:
        data = dict(data)
        data.pop("masked_gates", None)  # michel's revision mark (to_dict)
        if "per_example" in data:  # the setting before variants existed
            if not data.pop("per_example"):
                raise ValueError(
                    "importance per_example=False (|gradient| per batch) no longer exists; variant='bertology' "
                    "computes exactly what the bertology script does."
                )
            data.setdefault("variant", DEFAULT_VARIANT)
        return cls(**data)


@dataclass
class Importance:
    head: np.ndarray  # (L, H) normalised scores over original head ids
    mlp: np.ndarray  # (L,)
    head_raw: np.ndarray  # (L, H) accumulated |gradients| (see the variant), before any division
    mlp_raw: np.ndarray  # (L,)
    n_examples: int
    n_tokens: int
    logits: np.ndarray  # (N, C) model outputs of the same pass (eval mode), in example order
    loss: float  # mean loss over the examples


def normalize(head_raw: np.ndarray, mlp_raw: np.ndarray, n_tokens: int, config: ImportanceConfig):
    """Apply the configured normalisations; returns ``(head, mlp)`` float64 arrays."""
    head = np.asarray(head_raw, np.float64).copy()
    mlp = np.asarray(mlp_raw, np.float64).copy()
    if config.variant in _HEADS_BY_TOKENS and n_tokens > 0:
        head /= n_tokens  # head_importance /= tot_tokens
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
    """Hooks that turn one backward pass into per-example gradients of every head and MLP gate.

    With ``per_token`` (the ``michel`` variant) each example gets the sum over its tokens of |<ξ c_t, ∂L/∂(ξ c)_t>|
    (non-negative, and 0 at a masked gate, as in Michel et al.'s code) instead of its signed gradient.
    """

    def __init__(self, model: nn.Module, per_token: bool = False):
        self.adapter = get_adapter(model)
        self.per_token = per_token
        L, H = self.adapter.num_layers, self.adapter.num_heads
        self.L, self.H = L, H
        self.head: torch.Tensor | None = None  # (B, L, H) per-example gradients of the current batch
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
                # ∂L/∂ξ = <c, ∂L/∂(ξ c)>, also at a masked head; Michel et al.'s code multiplies the gated context
                # ξ c instead (its saved context is computed from masked attention), which is 0 at a masked head
                context = gated.detach() if self.per_token else raw

                def grad_hook(grad):  # grad: (B, T, H_cur * d) = ∂L/∂(ξ c)
                    B, T, _ = grad.shape
                    per = (context * grad).view(B, T, len(ids), -1).sum(-1)  # (B, T, H_cur): each token's share
                    per = per.abs() if self.per_token else per  # padding rows get no gradient: they add 0
                    self.head[:, layer, ids] += per.sum(1).double()  # (B, H_cur)

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
                context = output.detach() if self.per_token else raw  # as for heads: gated output in ``michel``

                def grad_hook(grad):  # grad: (B, T, hidden)
                    per = (context * grad).sum(-1)  # (B, T)
                    per = per.abs() if self.per_token else per
                    self.mlp[:, layer] += per.sum(1).double()  # (B,)

                output.register_hook(grad_hook)

        return hook


def _loss_sum(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float(), reduction="sum")
    return F.cross_entropy(logits.float(), labels, reduction="sum")


#: Most bytes of autograd graphs :func:`gate_gradients` keeps alive to decide, from the logits of every example,
#: whether the backward passes are needed at all. A larger pass runs each batch's backward right after its forward,
#: as if no ``needed`` callback were given. 256 MiB: small dev sets still skip the backward of a rejected step, and
#: the default main job (whose dev set keeps 574 MiB of graphs) no longer does. At 1 GiB it kept them, which took its
#: peak RSS from about 2.0 GB to 7.7 GB and its idle wall time from 117-123 s to 131-132 s on 2 cores (glibc's heap
#: fragments over the repeated steps, fine-tuning of the next seed slows too); the same masks and importance either
#: way (``benchmarks/bench_pipeline.py``, benchmarks/RESULTS.md, "Main job", session 12).
GRAPH_BUDGET_BYTES = 1 << 28


class _SavedBytes:
    """Counts the bytes autograd saves for backward (each storage once: frozen weights are shared by all batches)."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[int] = set()

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.total += storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor


def gate_gradients(
    model: nn.Module,
    features: Sequence[dict],
    num_labels: int,
    subnetwork: Subnetwork | None = None,
    batch_size: int = 32,
    variant: str = DEFAULT_VARIANT,
    pad_token_id: int = 0,
    progress: Callable[[int], None] | None = None,
    needed: Callable[[np.ndarray], bool] | None = None,
):
    """Accumulate |∂L/∂gate| over ``features`` as ``variant`` does (module docstring).

    Returns ``(head_raw, mlp_raw, n_tokens, logits, mean_loss)``: the sums before any division, the number of
    non-padding tokens, the logits in example order and the mean loss per example.

    ``needed(logits)``, when given, is asked once the forward passes of all examples are done (their graphs kept,
    up to :data:`GRAPH_BUDGET_BYTES`); if it returns False, no backward pass runs and ``head_raw`` and ``mlp_raw``
    are None. Pruning uses it to skip the gradients of a step whose dev score already rejects it. Once the kept
    graphs pass the budget, the rest of the pass backpropagates batch by batch and ``needed`` is not asked (the sums
    are returned). The backward passes that do run are those of the plain loop, in the same batch order, so the
    sums are the same to the bit.
    """
    check_variant(variant)
    sub = subnetwork or Subnetwork()
    adapter = get_adapter(model)
    L, H = adapter.num_layers, adapter.num_heads
    device = model_device(model)
    head_raw = torch.zeros(L, H, dtype=torch.float64, device=device)
    mlp_raw = torch.zeros(L, dtype=torch.float64, device=device)
    head_running = torch.zeros_like(head_raw)  # bertology: the never-zeroed head_mask.grad
    mlp_running = torch.zeros_like(mlp_raw)
    logits_out: list[tuple[np.ndarray, np.ndarray]] = []
    n_tokens, total_loss = 0, 0.0
    capture = _GateGradients(model, per_token=variant == "michel")
    mean_loss = variant != "per_example"  # the reference code backpropagates the batch-mean loss
    pending: list[tuple[int, torch.Tensor]] = []  # (batch size, loss to backpropagate) whose backward waits
    saved = _SavedBytes()
    defer = needed is not None

    def backward(n: int, loss: torch.Tensor) -> None:
        capture.start_batch(n, device)
        loss.backward()
        if variant == "per_example":
            head_raw.add_(capture.head.abs().sum(0))
            mlp_raw.add_(capture.mlp.abs().sum(0))
        elif variant == "bertology":  # head_importance += head_mask.grad.abs(), grad never zeroed
            head_running.add_(capture.head.sum(0))
            mlp_running.add_(capture.mlp.sum(0))
            head_raw.add_(head_running.abs())
            mlp_raw.add_(mlp_running.abs())
        else:  # michel: already Σ over tokens of |per-token share|
            head_raw.add_(capture.head.sum(0))
            mlp_raw.add_(capture.mlp.sum(0))

    was_training = model.training
    model.eval()  # dropout off: importance of the model as it is used
    try:
        with ExitStack() as stack:
            stack.enter_context(_frozen(model))
            stack.enter_context(Gates(model, sub.head_mask, sub.mlp_mask, requires_grad=True))
            if sub.weight_masks is not None:
                stack.enter_context(weights_zeroed(model, sub.weight_masks))
            capture.install(stack)
            batches = iterate_batches(features, batch_size, device, pad_token_id, sort_by_length=not mean_loss)
            for idx, batch in batches:
                labels = batch.pop("labels")
                # count the bytes of kept graphs only while deferring (the plain pass needs no hook per saved tensor)
                hooks = torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack)
                with hooks if defer else nullcontext():
                    logits = model(**batch).logits
                loss = _loss_sum(logits, labels, num_labels)
                pending.append((len(idx), loss / len(idx) if mean_loss else loss))
                if not defer or saved.total > GRAPH_BUDGET_BYTES:
                    defer = False  # over the budget: backpropagate as we go, from now on
                    for n, pending_loss in pending:
                        backward(n, pending_loss)
                    pending.clear()
                n_tokens += int(batch["attention_mask"].sum())
                total_loss += float(loss.detach())
                logits_out.append((idx, logits.detach().float().cpu().numpy()))
                if progress is not None:
                    progress(len(idx))
            logits = np.zeros((len(features), logits_out[0][1].shape[1]), np.float32)
            for idx, block in logits_out:
                logits[idx] = block
            skip = bool(pending) and not needed(logits)
            if not skip:
                for n, pending_loss in pending:
                    backward(n, pending_loss)
            pending.clear()
    finally:
        model.train(was_training)
    mean = total_loss / len(features)
    if skip:
        return None, None, n_tokens, logits, mean
    return head_raw.cpu().numpy(), mlp_raw.cpu().numpy(), n_tokens, logits, mean


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
    """Head and MLP importance of ``model`` (with ``subnetwork`` masked) over labelled ``examples``.

    ``batch_size`` is speed only for the ``per_example`` variant; the ``bertology`` and ``michel`` scores depend on
    it (and on the order of ``examples``), as in their reference code.
    """
    if not examples:
        raise InputError("importance needs at least one labelled example.")
    check_classifier(model, num_labels, "importance scoring")
    if any(e.label is None for e in examples):
        raise InputError("importance needs labelled examples (the loss needs a label).")
    features = encode(tokenizer, examples, max_length, regression=num_labels == 1)
    head_raw, mlp_raw, n_tokens, logits, loss = gate_gradients(
        model, features, num_labels, subnetwork, batch_size, config.variant, tokenizer.pad_token_id or 0, progress
    )
    head, mlp = normalize(head_raw, mlp_raw, n_tokens, config)
    return Importance(head, mlp, head_raw, mlp_raw, len(examples), n_tokens, logits, loss)
