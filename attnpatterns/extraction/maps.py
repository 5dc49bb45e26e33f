"""Raw attention maps α and norm-weighted maps ‖α_ij f_h(x_j)‖ (Kobayashi et al. 2020), captured with hooks.

For head h of a layer, f_h(x) = (x W_V + b_V)_h W_O^h, where W_O^h is head h's block of input columns of the
attention output projection: the vector head h adds to the residual stream for token x, before the output bias,
residual and LayerNorm. Because α_ij is a scalar, ‖α_ij f_h(x_j)‖ = α_ij ‖f_h(x_j)‖, so the norm map is the raw
map with column j scaled by ‖f_h(x_j)‖. We never materialise α·f(x) (batch × heads × T × T × hidden): only the
per-token norms (batch × heads × T) are computed, from the value projection captured by a hook, through each
head's d × d Gram matrix W_O^hᵀ W_O^h.

Masked heads (head mask 0) produce no map; heads keep their original (layer, head) ids even after surgery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from attnpatterns.constants import MAP_KINDS
from attnpatterns.models.adapter import get_adapter
from attnpatterns.pruning.gates import Gates


@dataclass
class LayerMaps:
    """Maps of one layer for one batch: ``maps[kind]`` is (B, H_kept, T, T); ``head_ids`` are original ids."""

    head_ids: list[int]
    maps: dict[str, torch.Tensor]


class MapCapture:
    """Hooks that collect raw and/or normed maps of every kept head during a forward pass.

    Usage::

        with MapCapture(model, kinds=("raw", "normed"), head_mask=m) as cap:
            model(**batch)
        layers = cap.pop()   # list[LayerMaps], one per layer
    """

    def __init__(
        self,
        model: nn.Module,
        kinds: tuple[str, ...] = MAP_KINDS,
        head_mask: np.ndarray | None = None,
        mlp_mask: np.ndarray | None = None,
    ):
        unknown = [k for k in kinds if k not in MAP_KINDS]
        if unknown or not kinds:
            raise ValueError(f"map kinds must be a non-empty subset of {MAP_KINDS}, got {kinds}")
        self.model = model
        self.kinds = tuple(kinds)
        self.adapter = get_adapter(model)
        self.gates = Gates(model, head_mask, mlp_mask)
        mask = self.gates.head.detach().cpu().numpy()
        self.kept: list[list[int]] = []  # original ids, per layer
        self.positions: list[list[int]] = []  # positions in the layer's current weight matrices
        for layer in range(self.adapter.num_layers):
            ids = self.adapter.head_ids(layer)
            pos = [p for p, h in enumerate(ids) if mask[layer, h] == 1]
            self.positions.append(pos)
            self.kept.append([ids[p] for p in pos])
        self._values: dict[int, torch.Tensor] = {}
        self._grams: dict[int, torch.Tensor] = {}
        self._out: list[LayerMaps | None] = [None] * self.adapter.num_layers
        self._handles: list = []

    def _value_hook(self, layer: int):
        def hook(module, args, output):
            self._values[layer] = output.detach()

        return hook

    def _attention_hook(self, layer: int):
        head_dim = self.adapter.head_dim
        w_out_module = self.adapter.layer(layer).attn_out

        def hook(module, args, output):
            probs = output[1]
            if probs is None:
                raise RuntimeError(
                    "the model returned no attention probabilities; load it with attn_implementation='eager' "
                    "(attnpatterns.models.load_model does)."
                )
            pos = self.positions[layer]
            value_out = self._values.pop(layer, None)
            if not pos:
                self._out[layer] = LayerMaps([], {})
                return None
            alpha = probs.detach()
            if len(pos) != alpha.shape[1]:  # some heads masked: keep only the others
                alpha = alpha.index_select(1, torch.as_tensor(pos, device=probs.device))
            alpha = alpha.float()  # (B, Hk, T, T)
            maps = {}
            if "raw" in self.kinds:
                maps["raw"] = alpha
            if "normed" in self.kinds:
                B, T, _ = value_out.shape
                v = value_out.view(B, T, -1, head_dim)  # (B, T, Hc, d)
                if layer not in self._grams:  # weights are fixed during a capture: one Gram per layer
                    self._grams[layer] = head_gram(w_out_module.weight.detach(), pos, head_dim)
                norms = _value_norms(v, self._grams[layer], pos)  # (B, Hk, T)
                maps["normed"] = alpha * norms[:, :, None, :]  # column j scaled by ‖f_h(x_j)‖
            self._out[layer] = LayerMaps(list(self.kept[layer]), maps)
            return None

        return hook

    def install(self) -> "MapCapture":
        # All-ones gates change nothing; skipping their hooks saves two multiplications per layer.
        if bool((self.gates.head != 1).any()) or bool((self.gates.mlp != 1).any()):
            self.gates.install()
        for layer in range(self.adapter.num_layers):
            mods = self.adapter.layer(layer)
            if "normed" in self.kinds:
                self._handles.append(mods.value.register_forward_hook(self._value_hook(layer)))
            self._handles.append(mods.self_attention.register_forward_hook(self._attention_hook(layer)))
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.gates.remove()

    def __enter__(self) -> "MapCapture":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    def pop(self) -> list[LayerMaps]:
        out = self._out
        if any(x is None for x in out):
            raise RuntimeError("no maps were captured for some layers; run a forward pass inside the context first")
        self._out = [None] * self.adapter.num_layers
        return out  # type: ignore[return-value]


def head_gram(w_out: torch.Tensor, positions: list[int], head_dim: int) -> torch.Tensor:
    """G_h = W_O^hᵀ W_O^h (float64) for the heads at ``positions``: w_out (hidden, Hc*d) → (Hk, d, d)."""
    hidden = w_out.shape[0]
    idx = torch.as_tensor(positions, device=w_out.device, dtype=torch.long)
    w = w_out.double().view(hidden, -1, head_dim).index_select(1, idx)  # (hidden, Hk, d)
    return torch.einsum("ohd,ohe->hde", w, w)


def _value_norms(v: torch.Tensor, gram: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """‖(x W_V + b_V)_h W_O^h‖ for the heads at ``positions``: v (B, T, Hc, d), gram (Hk, d, d) → (B, Hk, T).

    ‖v W_O^hᵀ‖² = v G_h vᵀ with the head's Gram matrix G_h = W_O^hᵀ W_O^h (d × d), so the cost per token is
    d² per head instead of d × hidden, and nothing of size hidden is built per token. G_h is formed once, in
    float64; the quadratic form is one batched matmul (checked against the materialised formula in the tests).
    """
    B, T, _, d = v.shape
    vk = v.index_select(2, torch.as_tensor(positions, device=v.device)) if len(positions) != v.shape[2] else v
    vh = vk.float().permute(2, 0, 1, 3).reshape(len(positions), B * T, d)  # (Hk, B*T, d)
    sq = (torch.bmm(vh, gram.to(torch.float32)) * vh).sum(-1)  # (Hk, B*T)
    return sq.clamp_min_(0).sqrt_().view(len(positions), B, T).transpose(0, 1)  # (B, Hk, T)
