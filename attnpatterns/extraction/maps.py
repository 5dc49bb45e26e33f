"""Raw attention maps α and norm-weighted maps ‖α_ij f_h(x_j)‖ (Kobayashi et al. 2020), captured with hooks.

For head h of a layer, f_h(x) = (x W_V + b_V)_h W_O^h, where W_O^h is head h's block of input columns of the
attention output projection: the vector head h adds to the residual stream for token x, before the output bias,
residual and LayerNorm. Because α_ij is a scalar, ‖α_ij f_h(x_j)‖ = α_ij ‖f_h(x_j)‖, so the norm map is the raw
map with column j scaled by ‖f_h(x_j)‖. We never materialise α·f(x) (batch × heads × T × T × hidden): only the
per-token norms (batch × heads × T) are computed, from the value projection captured by a hook, through each
head's d × d Gram matrix W_O^hᵀ W_O^h.

Masked heads (head mask 0) produce no map; heads keep their original (layer, head) ids even after surgery.

:meth:`MapCapture.run` stops the forward pass as soon as the last layer's maps are captured: what comes after them
(the last layer's attention output projection and feed-forward block unless a layer-level kind needs them, the
pooler, any task head) cannot change a map, so it is not computed. In MiniLM's last layer that is three quarters of
the layer's matrix products, about an eighth of the whole forward pass. ``with MapCapture(...): model(**batch)``
runs the whole forward pass, as before, and captures the same maps.

The same hooks also produce the layer-level context-mixing kinds of :data:`~attnpatterns.constants.LAYER_KINDS`
(rollout, resln, alti, valuezero; the maths is in :mod:`attnpatterns.extraction.mixing`): one (B, 1, T, T) map per
layer, for every layer (a layer whose heads are all masked still mixes through its residual). Rollout needs only
α; resln and alti also read the layer input and the attention block's LayerNorm input and output, captured in the
same forward pass; value zeroing replays each layer on the input captured in that pass (T + 1 sequences per
example in one batched call of the layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from attnpatterns.constants import HEAD_KINDS, LAYER_KINDS, MAP_KINDS
from attnpatterns.extraction import mixing
from attnpatterns.masking.gates import Gates
from attnpatterns.models.adapter import get_adapter


@dataclass
class LayerMaps:
    """Maps of one layer for one batch: ``maps[kind]`` is (B, H_kept, T, T) for raw and normed, (B, 1, T, T) for
    the layer-level kinds; ``head_ids`` are the original ids of the kept heads.

    ``column_norms`` (B, H_kept, T), given whenever normed maps are asked for, is ‖f_h(x_j)‖ per head and token:
    the normed map is ``maps["raw"] * column_norms[:, :, None, :]``. A capture made with ``normed_maps=False``
    gives the normed maps only as these two factors (``maps["raw"]`` and ``column_norms``), as an extraction run
    stores them.
    """

    head_ids: list[int]
    maps: dict[str, torch.Tensor]
    column_norms: torch.Tensor | None = None


class _Captured(Exception):
    """Raised by the hook that completes the last layer's maps during :meth:`MapCapture.run`: the rest of the
    forward pass cannot change a map, so it is cut short."""


class MapCapture:
    """Hooks that collect raw and/or normed maps of every kept head during a forward pass.

    Usage::

        with MapCapture(model, kinds=("raw", "normed"), head_mask=m) as cap:
            layers = cap.run(**batch)   # list[LayerMaps], one per layer; the forward stops after the last map
            # or: model(**batch); layers = cap.pop()   (the whole forward pass, model outputs included)

    With ``normed_maps=False`` the normed maps are not multiplied out: each :class:`LayerMaps` gives them as the
    raw map and the column norms (what an extraction run stores), which saves a (B, H, T, T) product per layer.
    """

    def __init__(
        self,
        model: nn.Module,
        kinds: tuple[str, ...] = HEAD_KINDS,
        head_mask: np.ndarray | None = None,
        mlp_mask: np.ndarray | None = None,
        normed_maps: bool = True,
    ):
        unknown = [k for k in kinds if k not in MAP_KINDS]
        if unknown or not kinds:
            raise ValueError(f"map kinds must be a non-empty subset of {MAP_KINDS}, got {kinds}")
        self.model = model
        self.kinds = tuple(kinds)
        self.normed_maps = normed_maps  # False: normed maps as their factors only (raw map, column norms)
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
        self._ln_w_out: dict[int, torch.Tensor] = {}  # per layer: Γ C W_O (LayerNorm's linear part folded in)
        self._out: list[LayerMaps | None] = [None] * self.adapter.num_layers
        self._handles: list = []
        self._layer_kinds = tuple(k for k in self.kinds if k in LAYER_KINDS)
        self._need_values = "normed" in self.kinds or bool({"resln", "alti"} & set(self.kinds))
        self._pending: dict[int, dict] = {}  # per layer: what the LayerNorm hook needs from the attention hook
        self._rolled: dict[str, torch.Tensor | None] = {}  # running rollout products (rollout, alti)
        self._lengths: list[int] | None = None
        self._replaying = False  # inside a value-zeroing replay: the capture hooks stand aside
        self._stopping = False  # inside run(): the hook that completes the last layer ends the forward pass

    def _value_hook(self, layer: int):
        def hook(module, args, output):
            if not self._replaying:
                self._values[layer] = output.detach()

        return hook

    def _attention_hook(self, layer: int):
        head_dim = self.adapter.head_dim
        w_out_module = self.adapter.layer(layer).attn_out

        def hook(module, args, output):
            if self._replaying:
                return None
            probs = output[1]
            if probs is None and not self.adapter.head_ids(layer):  # every head removed by surgery
                x = args[0]
                probs = x.new_zeros(x.shape[0], 0, x.shape[1], x.shape[1])
            if probs is None:
                raise RuntimeError(
                    "the model returned no attention probabilities; load it with attn_implementation='eager' "
                    "(attnpatterns.models.load_model does)."
                )
            if layer == 0:  # a new forward pass: restart the rollout products
                self._rolled = {}
            pos = self.positions[layer]
            value_out = self._values.pop(layer, None)
            alpha = probs.detach()
            if len(pos) != alpha.shape[1]:  # some heads masked: keep only the others
                alpha = alpha.index_select(1, torch.as_tensor(pos, device=probs.device, dtype=torch.long))
            alpha = alpha.float() if alpha.dtype != torch.float64 else alpha  # (B, Hk, T, T)
            self._layer_maps(layer, alpha, args[0].detach(), value_out)
            if not pos:
                self._out[layer] = LayerMaps([], {})
                self._completed(layer, by_attention=True)
                return None
            maps = {}
            norms = None
            if "raw" in self.kinds:
                maps["raw"] = alpha
            if "normed" in self.kinds:
                B, T, _ = value_out.shape
                v = value_out.view(B, T, -1, head_dim)  # (B, T, Hc, d)
                if layer not in self._grams:  # weights are fixed during a capture: one Gram per layer
                    self._grams[layer] = head_gram(w_out_module.weight.detach(), pos, head_dim).float()
                norms = _value_norms(v, self._grams[layer], pos)  # (B, Hk, T)
                if self.normed_maps:
                    maps["normed"] = alpha * norms[:, :, None, :]  # column j scaled by ‖f_h(x_j)‖
                else:
                    maps["raw"] = alpha  # the normed map's first factor
            self._out[layer] = LayerMaps(list(self.kept[layer]), maps, norms)
            self._completed(layer, by_attention=True)
            return None

        return hook

    # -- layer-level kinds ---------------------------------------------------------------------------------------
    def _layer_maps(self, layer: int, alpha: torch.Tensor, x: torch.Tensor, value_out: torch.Tensor | None) -> None:
        """Rollout now; leave what resln and alti need for the LayerNorm hook, which sees y_i and x̃_i."""
        done: dict[str, torch.Tensor] = {}
        if "rollout" in self.kinds:
            self._rolled["rollout"] = mixing.roll(mixing.rollout_layer(alpha), self._rolled.get("rollout"))
            done["rollout"] = self._rolled["rollout"]
        self._pending[layer] = {"alpha": alpha, "x": x, "value": value_out, "maps": done}

    def _norm_hook(self, layer: int):
        mods = self.adapter.layer(layer)
        head_dim = self.adapter.head_dim

        def hook(module, args, output):
            if self._replaying:
                return None
            pending = self._pending[layer]
            maps = pending["maps"]
            if "resln" in self.kinds or "alti" in self.kinds:
                alpha = pending["alpha"]
                dtype = alpha.dtype
                gamma = module.weight.detach().to(dtype)
                x = pending["x"]
                value = pending["value"] if pending["value"] is not None else x.new_zeros(*x.shape[:2], 0)
                if layer not in self._ln_w_out:  # weights are fixed during a capture: fold γ ⊙ C into W_O once
                    self._ln_w_out[layer] = mixing.ln_linear(mods.attn_out.weight.detach().T.to(dtype), gamma).T
                # γ ⊙ C f^h(x_j) = (x_j W_V + b_V)_h (Γ C W_O^h)ᵀ: (B, T, Hk, D)
                fc = mixing.head_vectors(value.to(dtype), self._ln_w_out[layer], self.positions[layer], head_dim)
                xc = mixing.ln_linear(pending["x"].to(dtype), gamma)  # γ ⊙ C x_i, (B, T, D)
                scale = mixing.ln_scale(args[0].detach().to(dtype), module.eps)  # s(y_i), (B, T)
                if "resln" in self.kinds:
                    maps["resln"] = mixing.resln_layer(alpha, fc, xc, scale)
                if "alti" in self.kinds:
                    c = mixing.alti_layer(alpha, fc, xc, scale, output.detach().to(dtype))
                    self._rolled["alti"] = mixing.roll(c, self._rolled.get("alti"))
                    maps["alti"] = self._rolled["alti"]
            if "valuezero" not in self.kinds:
                self._finish_layer(layer)
            return None

        return hook

    def _block_hook(self, layer: int):
        mods = self.adapter.layer(layer)

        def hook(module, args, kwargs, output):
            if self._replaying:
                return None
            hidden = args[0]
            lengths = self._lengths or [hidden.shape[1]] * hidden.shape[0]
            self._replaying = True
            try:
                scores = mixing.value_zeroing_layer(module, mods.value, args, kwargs, lengths)
            finally:
                self._replaying = False
            self._pending[layer]["maps"]["valuezero"] = scores.to(torch.float32)
            self._finish_layer(layer)
            return None

        return hook

    def _pre_model_hook(self, module, args, kwargs):
        """Real lengths of the batch, for value zeroing (which replays real tokens only)."""
        mask = kwargs.get("attention_mask")
        self._lengths = None if mask is None else [int(n) for n in mask.sum(dim=1).tolist()]

    def _finish_layer(self, layer: int) -> None:
        pending = self._pending.pop(layer)
        target = self._out[layer]
        for kind in self._layer_kinds:
            target.maps[kind] = pending["maps"][kind][:, None].float()  # (B, 1, T, T)
        self._completed(layer, by_attention=False)

    def _completed(self, layer: int, by_attention: bool) -> None:
        """A layer's maps are complete (by its attention hook when only head kinds are asked for, else by the hook
        that adds the layer-level kinds); inside :meth:`run`, the last layer's completion ends the forward pass."""
        if by_attention and self._layer_kinds:
            return  # the layer-level kinds of this layer are still to come (LayerNorm or block hook)
        if self._stopping and layer == self.adapter.num_layers - 1:
            raise _Captured

    def run(self, **inputs) -> list[LayerMaps]:
        """Run the model on ``inputs`` and return every layer's maps (as :meth:`pop`), stopping the forward pass
        once the last layer's maps are captured: the rest (the last layer's feed-forward block, the pooler, a task
        head) cannot change a map. The model's outputs are not returned; call the model inside the context for
        them. Needs :meth:`install` (or the ``with`` block) first."""
        if not self._handles:
            raise RuntimeError("install the capture first: use `with MapCapture(...) as cap: cap.run(**inputs)`")
        self._stopping = True
        try:
            self.model(**inputs)
        except _Captured:
            pass
        finally:
            self._stopping = False
        return self.pop()

    def install(self) -> "MapCapture":
        # All-ones gates change nothing; skipping their hooks saves two multiplications per layer.
        if bool((self.gates.head != 1).any()) or bool((self.gates.mlp != 1).any()):
            self.gates.install()
        if "valuezero" in self.kinds:
            self._handles.append(self.model.register_forward_pre_hook(self._pre_model_hook, with_kwargs=True))
        for layer in range(self.adapter.num_layers):
            mods = self.adapter.layer(layer)
            if self._need_values:
                self._handles.append(mods.value.register_forward_hook(self._value_hook(layer)))
            self._handles.append(mods.self_attention.register_forward_hook(self._attention_hook(layer)))
            if self._layer_kinds:
                self._handles.append(mods.attn_norm.register_forward_hook(self._norm_hook(layer)))
            if "valuezero" in self.kinds:
                self._handles.append(mods.block.register_forward_hook(self._block_hook(layer), with_kwargs=True))
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
    float64; the quadratic form is one matmul broadcast over the batch, on a (B, Hk, T, d) view of the values (checked
    against the materialised formula in the tests). An earlier version first copied the values into a (Hk, B·T, d)
    block for one ``bmm``: the same numbers, about five times slower on a 2-core CPU (benchmarks/RESULTS.md,
    "Extraction").
    """
    vk = v.index_select(2, torch.as_tensor(positions, device=v.device)) if len(positions) != v.shape[2] else v
    vh = vk.float().transpose(1, 2)  # (B, Hk, T, d), a view
    sq = (torch.matmul(vh, gram.to(torch.float32)) * vh).sum(-1)  # (B, Hk, T)
    return sq.clamp_min_(0).sqrt_()
