"""A subnetwork: which heads, MLPs and (for magnitude pruning) which single weights of an encoder are kept.

One object carries the three kinds of mask so that evaluation, re-fine-tuning, controls and saving treat
structured and magnitude pruning alike. Head and MLP masks are applied with the gates of
:mod:`attnpatterns.masking.gates`; weight masks (boolean, named as in ``adapter.mask_targets()``: ``layer3.query``
for that encoder linear's weight, ``layer3.query.bias`` for its bias) are applied by multiplying the parameters in
place and restoring them afterwards, or -- for training with the pruned parts held off -- with
``torch.nn.utils.prune`` reparametrisations, so that pruned weights stay exactly zero through every optimiser step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnpatterns.constants import HEAD_MASK_FILE, MLP_MASK_FILE
from attnpatterns.masking.files import MaskError, check_head_mask, check_mlp_mask, load_mask, save_masks
from attnpatterns.models.adapter import get_adapter

WEIGHT_MASKS_FILE = "weight_masks.safetensors"


@dataclass
class Subnetwork:
    """Masks with 1/True = kept. Any of them may be None (= everything of that kind kept)."""

    head_mask: np.ndarray | None = None  # (L, H) float 0/1 over original head ids
    mlp_mask: np.ndarray | None = None  # (L,) float 0/1
    weight_masks: dict[str, torch.Tensor] | None = None  # name -> bool tensor shaped like the weight (or bias)

    @property
    def is_full(self) -> bool:
        return (
            (self.head_mask is None or bool(np.all(self.head_mask == 1)))
            and (self.mlp_mask is None or bool(np.all(self.mlp_mask == 1)))
            and (self.weight_masks is None or all(bool(m.all()) for m in self.weight_masks.values()))
        )

    def check(self, model: nn.Module) -> Subnetwork:
        """Validate shapes against ``model``; raise :class:`~attnpatterns.masking.files.MaskError` saying what is
        wrong."""
        adapter = get_adapter(model)
        L, H = adapter.num_layers, adapter.num_heads
        if self.head_mask is not None:
            self.head_mask = check_head_mask(self.head_mask, L, H)
        if self.mlp_mask is not None:
            self.mlp_mask = check_mlp_mask(self.mlp_mask, L)
        if self.weight_masks is not None:
            targets = adapter.mask_targets()
            unknown = sorted(set(self.weight_masks) - set(targets))
            if unknown:
                raise MaskError(
                    f"weight masks name {', '.join(unknown[:3])} which this model does not have (it has "
                    f"{len(targets)} encoder weights and biases, e.g. {next(iter(targets))}); use masks made for "
                    "this model."
                )
            for name, mask in self.weight_masks.items():
                shape = tuple(_parameter(targets, name).shape)
                if tuple(mask.shape) != shape:
                    raise MaskError(
                        f"weight mask {name} has shape {tuple(mask.shape)} but the parameter has {shape}; use masks "
                        "made for this model."
                    )
        return self

    def digest(self) -> str | None:
        """A short hash of the masks (None for the full model): what run fingerprints record."""
        if self.is_full:
            return None
        digest = hashlib.sha256()
        for name, mask in (("head", self.head_mask), ("mlp", self.mlp_mask)):
            if mask is not None:
                digest.update(name.encode() + np.asarray(mask, np.float32).tobytes())
        for name, mask in sorted((self.weight_masks or {}).items()):
            digest.update(name.encode() + np.packbits(mask.cpu().numpy()).tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        out: dict = {}
        if self.head_mask is not None:
            out["heads_left"] = int(self.head_mask.sum())
            out["heads_total"] = int(self.head_mask.size)
        if self.mlp_mask is not None:
            out["mlps_left"] = int(self.mlp_mask.sum())
            out["mlps_total"] = int(self.mlp_mask.size)
        if self.weight_masks is not None:
            kept = sum(int(m.sum()) for m in self.weight_masks.values())
            total = sum(m.numel() for m in self.weight_masks.values())
            out["weights_left"] = kept
            out["weights_total"] = total
            out["sparsity"] = 1.0 - kept / total if total else 0.0
        return out

    # -- applying ----------------------------------------------------------------------------------------------
    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Run ``model`` with this subnetwork (gates for heads/MLPs; weights zeroed in place, restored on exit)."""
        from attnpatterns.masking.gates import gated

        with ExitStack() as stack:
            if self.head_mask is not None or self.mlp_mask is not None:
                stack.enter_context(gated(model, self.head_mask, self.mlp_mask))
            if self.weight_masks is not None:
                stack.enter_context(weights_zeroed(model, self.weight_masks))
            yield

    @contextmanager
    def held_off(self, model: nn.Module) -> Iterator[None]:
        """For training: masked heads/MLPs gated off, masked weights fixed at zero (they stay zero on exit)."""
        from torch.nn.utils import prune

        from attnpatterns.masking.gates import gated

        with ExitStack() as stack:
            if self.head_mask is not None or self.mlp_mask is not None:
                stack.enter_context(gated(model, self.head_mask, self.mlp_mask))
            targets = get_adapter(model).mask_targets()
            pruned = []
            for name, mask in (self.weight_masks or {}).items():
                module, attribute = targets[name]
                prune.custom_from_mask(module, attribute, mask.to(getattr(module, attribute).device))
                pruned.append((module, attribute))
            try:
                yield
            finally:
                for module, attribute in pruned:
                    prune.remove(module, attribute)  # keep weight = weight_orig * mask as a plain parameter

    # -- files -------------------------------------------------------------------------------------------------
    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        save_masks(folder, self.head_mask, self.mlp_mask)
        if self.weight_masks is not None:
            from safetensors.torch import save_file

            tensors = {k: v.to(torch.uint8).cpu().contiguous() for k, v in self.weight_masks.items()}
            save_file(tensors, str(folder / WEIGHT_MASKS_FILE))

    @classmethod
    def load(cls, folder: Path | str) -> Subnetwork:
        """Read whichever masks a folder holds (a pruning run, or the published ``seed_<S>`` layout)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MaskError(f"{folder} is not a folder; pass a pruning run folder holding {HEAD_MASK_FILE}.")
        head = load_mask(folder, HEAD_MASK_FILE) if (folder / HEAD_MASK_FILE).is_file() else None
        mlp = load_mask(folder, MLP_MASK_FILE) if (folder / MLP_MASK_FILE).is_file() else None
        weights = None
        if (folder / WEIGHT_MASKS_FILE).is_file():
            from safetensors.torch import load_file

            weights = {k: v.bool() for k, v in load_file(str(folder / WEIGHT_MASKS_FILE)).items()}
        if head is None and mlp is None and weights is None:
            raise MaskError(
                f"{folder} holds no masks ({HEAD_MASK_FILE}, {MLP_MASK_FILE} or {WEIGHT_MASKS_FILE}); "
                "pass a folder written by `attnpatterns prune`."
            )
        return cls(head, mlp, weights)


def _parameter(targets: dict[str, tuple[nn.Linear, str]], name: str) -> torch.Tensor:
    module, attribute = targets[name]
    return getattr(module, attribute)


@contextmanager
def weights_zeroed(model: nn.Module, masks: dict[str, torch.Tensor]) -> Iterator[None]:
    """Multiply each named encoder weight (or bias) by its mask for the duration of the block, then restore it
    exactly."""
    targets = get_adapter(model).mask_targets()
    saved: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name, mask in masks.items():
                parameter = _parameter(targets, name)
                saved[name] = parameter.detach().clone()
                parameter.mul_(mask.to(device=parameter.device, dtype=parameter.dtype))
        yield
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                _parameter(targets, name).copy_(original)
