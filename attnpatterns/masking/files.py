"""Head and MLP masks: loading, validating and saving the arrays that say which components are kept.

A head mask is a float array of shape (layers, heads) with 1 = keep, 0 = pruned; an MLP mask has shape (layers,).
These are the files the paper's authors published (``head_mask.npy``, ``mlp_mask.npy``) and what every pruning run
writes. Validation happens here once so that every consumer gets the same clear errors.

Accepted files: a ``.npy`` array written by ``numpy.save`` (never unpickled), or a folder holding ``head_mask.npy``
/ ``mlp_mask.npy`` (a pruning run). Anything else (a PyTorch ``.pt``, an ``.npz``, text) is refused with a message
that names what was found and how to convert it. A head mask that keeps no head would give runs without a single
map, so :func:`load_head_mask` refuses it unless ``allow_empty=True`` (``--allow-empty-mask`` on the command line).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnpatterns.constants import HEAD_MASK_FILE, MLP_MASK_FILE


class MaskError(ValueError):
    """A mask file is missing, malformed, or does not fit the model."""


class EmptyMaskError(MaskError):
    """A head mask that keeps no head (every value 0) where that was not asked for."""


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"  # .npz archives and torch.save files are zip archives


def _accepted(filename: str) -> str:
    return f"a .npy array saved with numpy.save, or a run folder holding {filename}"


def _not_npy_message(path: Path, head: bytes, filename: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".bin") or (head.startswith(_ZIP_MAGIC) and suffix != ".npz"):
        found = "a PyTorch file (torch.save)"
        fix = (f"convert it with: python -c \"import numpy, torch; "
               f"numpy.save('{filename}', torch.load('{path}').float().numpy())\"")
    elif suffix == ".npz" or head.startswith(_ZIP_MAGIC):
        found = "a .npz archive"
        fix = f"save the one array with numpy.save('{filename}', array)"
    else:
        found = f"a {suffix or 'suffix-less'} file that is not a .npy array"
        fix = f"save the 0/1 array with numpy.save('{filename}', array)"
    return f"{path} is {found}; masks must be {_accepted(filename)}: {fix}."


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
        with open(resolved, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as err:
        raise MaskError(f"cannot read mask file {resolved}: {err.strerror or err}.") from err
    if not head.startswith(_NPY_MAGIC):
        raise MaskError(_not_npy_message(resolved, head, filename))
    try:
        arr = np.load(resolved, allow_pickle=False)
        arr = np.asarray(arr, dtype=np.float32)
    except (ValueError, TypeError, OSError) as err:
        raise MaskError(
            f"{resolved} is not a numeric .npy array ({err}); masks must be {_accepted(filename)}, "
            "holding 0 (pruned) and 1 (kept)."
        ) from err
    return _binary(arr, resolved)


def _binary(mask: np.ndarray, origin) -> np.ndarray:
    """``mask`` if it holds only 0 (pruned) and 1 (kept); :class:`MaskError` naming ``origin`` otherwise."""
    if not np.all((mask == 0) | (mask == 1)):  # NaN and inf fail too
        raise MaskError(f"{origin} must hold only 0 (pruned) and 1 (kept) values.")
    return mask


def check_head_mask(mask: np.ndarray, num_layers: int, num_heads: int, origin: str = "head mask") -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (num_layers, num_heads):
        raise MaskError(
            f"{origin} has shape {tuple(mask.shape)} but the model has {num_layers} layers x {num_heads} heads; "
            f"use a mask made for this model (shape ({num_layers}, {num_heads}), 1 = keep)."
        )
    return _binary(mask, origin)


def check_mlp_mask(mask: np.ndarray, num_layers: int, origin: str = "MLP mask") -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (num_layers,):
        raise MaskError(
            f"{origin} has shape {tuple(mask.shape)} but the model has {num_layers} layers; "
            f"use a mask of shape ({num_layers},), 1 = keep."
        )
    return _binary(mask, origin)


def require_kept_heads(mask: np.ndarray, origin: str = "head mask", option: str = "--allow-empty-mask") -> np.ndarray:
    """``mask`` unchanged if it keeps at least one head; :class:`EmptyMaskError` otherwise."""
    if not np.any(np.asarray(mask) == 1):
        raise EmptyMaskError(
            f"{origin} keeps no heads (every value is 0): the model would run without a single attention head "
            "(and extraction would give no maps); "
            f"pass a mask with at least one 1 (1 = keep), or add {option} if that is really what you want."
        )
    return mask


def load_head_mask(
    path: Path | str, num_layers: int, num_heads: int, allow_empty: bool = False
) -> np.ndarray:
    """The head mask at ``path`` checked against the model; an all-zero mask needs ``allow_empty=True``."""
    mask = check_head_mask(load_mask(path, HEAD_MASK_FILE), num_layers, num_heads, origin=str(path))
    return mask if allow_empty else require_kept_heads(mask, origin=str(path))


def load_mlp_mask(path: Path | str, num_layers: int) -> np.ndarray:
    return check_mlp_mask(load_mask(path, MLP_MASK_FILE), num_layers, origin=str(path))


def save_masks(folder: Path | str, head_mask: np.ndarray | None, mlp_mask: np.ndarray | None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if head_mask is not None:
        np.save(folder / HEAD_MASK_FILE, np.asarray(head_mask, dtype=np.float32))
    if mlp_mask is not None:
        np.save(folder / MLP_MASK_FILE, np.asarray(mlp_mask, dtype=np.float32))
