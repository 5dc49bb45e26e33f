"""Head and MLP masks: loading, validating and saving the arrays that say which components are kept.

A head mask is a float array of shape (layers, heads) with 1 = keep, 0 = pruned; an MLP mask has shape (layers,).
These are the files the paper's authors published (``head_mask.npy``, ``mlp_mask.npy``) and what every pruning run
writes. Validation happens here once so that every consumer gets the same clear errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnpatterns.constants import HEAD_MASK_FILE, MLP_MASK_FILE


class MaskError(ValueError):
    """A mask file is missing, malformed, or does not fit the model."""


def _resolve(path: Path | str, filename: str) -> Path:
    path = Path(path)
    if path.is_dir():
        candidate = path / filename
        if not candidate.is_file():
            raise MaskError(f"{path} is a folder without {filename}; pass the .npy file or a pruning run folder.")
        return candidate
    if not path.is_file():
        raise MaskError(f"mask file {path} does not exist; pass a {filename} written by `attnpatterns prune`.")
    return path


def load_mask(path: Path | str, filename: str) -> np.ndarray:
    """Load a mask array from a ``.npy`` file (or a folder holding ``filename``) without unpickling."""
    resolved = _resolve(path, filename)
    try:
        arr = np.load(resolved, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise MaskError(f"{resolved} is not a readable .npy array ({err}); save masks with numpy.save.") from err
    arr = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)) or not np.all((arr == 0) | (arr == 1)):
        raise MaskError(f"{resolved} must hold only 0 (pruned) and 1 (kept) values.")
    return arr


def check_head_mask(mask: np.ndarray, num_layers: int, num_heads: int, origin: str = "head mask") -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (num_layers, num_heads):
        raise MaskError(
            f"{origin} has shape {tuple(mask.shape)} but the model has {num_layers} layers x {num_heads} heads; "
            f"use a mask made for this model (shape ({num_layers}, {num_heads}), 1 = keep)."
        )
    if not np.all((mask == 0) | (mask == 1)):
        raise MaskError(f"{origin} must hold only 0 (pruned) and 1 (kept) values.")
    return mask


def check_mlp_mask(mask: np.ndarray, num_layers: int, origin: str = "MLP mask") -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (num_layers,):
        raise MaskError(
            f"{origin} has shape {tuple(mask.shape)} but the model has {num_layers} layers; "
            f"use a mask of shape ({num_layers},), 1 = keep."
        )
    if not np.all((mask == 0) | (mask == 1)):
        raise MaskError(f"{origin} must hold only 0 (pruned) and 1 (kept) values.")
    return mask


def load_head_mask(path: Path | str, num_layers: int, num_heads: int) -> np.ndarray:
    return check_head_mask(load_mask(path, HEAD_MASK_FILE), num_layers, num_heads, origin=str(path))


def load_mlp_mask(path: Path | str, num_layers: int) -> np.ndarray:
    return check_mlp_mask(load_mask(path, MLP_MASK_FILE), num_layers, origin=str(path))


def save_masks(folder: Path | str, head_mask: np.ndarray | None, mlp_mask: np.ndarray | None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if head_mask is not None:
        np.save(folder / HEAD_MASK_FILE, np.asarray(head_mask, dtype=np.float32))
    if mlp_mask is not None:
        np.save(folder / MLP_MASK_FILE, np.asarray(mlp_mask, dtype=np.float32))
