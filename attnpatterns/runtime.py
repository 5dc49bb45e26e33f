"""Process-level settings chosen once at the edge: the device, the random seed and the mixed precision.

Library functions never pick a device themselves; they follow the device of the model or tensors they are given.
Only entry points (the CLI, the pipeline) call :func:`resolve_device` and :func:`seed_everything`.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
MIXED_PRECISION = ("no", "fp16", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a :class:`torch.device`.

    ``auto`` means CUDA when it is available, else CPU. Asking for CUDA on a machine without it is an error that
    says so, rather than a silent fallback that would make timings and results misleading.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available here; use --device cpu or --device auto"
            )
        return torch.device(name)
    raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def check_mixed_precision(mode: str, device) -> str:
    """``mode`` if this device can use it: fp16 needs CUDA, bf16 works on CUDA and recent CPUs."""
    if mode not in MIXED_PRECISION:
        raise ValueError(f"mixed precision must be one of {', '.join(MIXED_PRECISION)}, not {mode!r}.")
    if mode == "fp16" and torch.device(device).type != "cuda":
        raise ValueError("fp16 mixed precision needs a CUDA GPU; use --mixed-precision bf16 or no on this device.")
    return mode


def autocast(mode: str, device):
    """A context that runs the forward pass in ``mode`` (no: a no-op)."""
    if check_mixed_precision(mode, device) == "no":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.float16 if mode == "fp16" else torch.bfloat16)
