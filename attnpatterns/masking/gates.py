"""Head and MLP gates installed with forward hooks: fixed masks, or differentiable gates for importance scores.

transformers 5 removed ``head_mask``, so attnpatterns owns its gates. A *head gate* ξ_{l,h} scales head h's
context vector (its slice of the attention output, before the output projection W_O); an *MLP gate* ν_l scales the
FFN output before dropout, the residual add and LayerNorm. With all gates 1 the model is unchanged; a 0 removes the
component's contribution exactly as the paper's masks do. With ``requires_grad=True`` the gates are leaves whose
gradient ∂L/∂ξ is what the importance scores of Michel et al. (2019) are made of: the scores take its absolute value
and accumulate it over a dataset (:mod:`attnpatterns.pruning.importance`, which computes them with its own hooks).

Gates are indexed by ORIGINAL head id, so they keep working after physical surgery: the hook maps the layer's current
head positions to their original ids through the adapter.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from attnpatterns.masking.files import check_head_mask, check_mlp_mask
from attnpatterns.models.adapter import EncoderAdapter, get_adapter, model_device


class Gates:
    """Gate tensors for one model plus the hooks that apply them.

    ``head`` has shape (layers, heads) over original head ids; ``mlp`` has shape (layers,). Use as a context
    manager or call :meth:`install` / :meth:`remove`.
    """

    def __init__(
        self,
        model: nn.Module,
        head_mask: np.ndarray | torch.Tensor | None = None,
        mlp_mask: np.ndarray | torch.Tensor | None = None,
        requires_grad: bool = False,
    ):
        self.model = model
        self.adapter: EncoderAdapter = get_adapter(model)
        L, H = self.adapter.num_layers, self.adapter.num_heads
        device = model_device(model)
        head = np.ones((L, H), np.float32) if head_mask is None else check_head_mask(_np(head_mask), L, H)
        mlp = np.ones((L,), np.float32) if mlp_mask is None else check_mlp_mask(_np(mlp_mask), L)
        self.head = torch.tensor(head, device=device, requires_grad=requires_grad)
        self.mlp = torch.tensor(mlp, device=device, requires_grad=requires_grad)
        self._handles: list = []

    # -- hooks -------------------------------------------------------------------------------------------------
    def _head_hook(self, layer: int):
        adapter = self.adapter

        def hook(module: nn.Module, args: tuple):
            (context,) = args[:1]
            ids = adapter.head_ids(layer)
            if not ids:
                return None
            gate = self.head[layer, ids].to(context.device, context.dtype)  # (H_cur,); device: DataParallel replicas
            shape = context.shape
            context = context.view(*shape[:-1], len(ids), -1) * gate[:, None]  # (B, T, H_cur, d)
            return (context.view(shape), *args[1:])

        return hook

    def _mlp_hook(self, layer: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor):
            return output * self.mlp[layer].to(output.device, output.dtype)

        return hook

    def install(self) -> "Gates":
        if self._handles:
            return self
        for i in range(self.adapter.num_layers):
            mods = self.adapter.layer(i)
            self._handles.append(mods.attn_out.register_forward_pre_hook(self._head_hook(i)))
            self._handles.append(mods.ffn_out.register_forward_hook(self._mlp_hook(i)))
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "Gates":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- convenience -------------------------------------------------------------------------------------------
    def set_masks(self, head_mask=None, mlp_mask=None) -> None:
        with torch.no_grad():
            if head_mask is not None:
                L, H = self.head.shape
                self.head.copy_(torch.as_tensor(check_head_mask(_np(head_mask), L, H)))
            if mlp_mask is not None:
                self.mlp.copy_(torch.as_tensor(check_mlp_mask(_np(mlp_mask), self.mlp.shape[0])))

    def zero_grad(self) -> None:
        for t in (self.head, self.mlp):
            if t.grad is not None:
                t.grad = None


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@contextmanager
def gated(model: nn.Module, head_mask=None, mlp_mask=None, requires_grad: bool = False) -> Iterator[Gates]:
    """``with gated(model, head_mask, mlp_mask) as gates:`` runs the model with the masks applied."""
    gates = Gates(model, head_mask, mlp_mask, requires_grad=requires_grad)
    with gates:
        yield gates
