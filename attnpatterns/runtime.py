"""Process-level settings chosen once at the edge: the device and the random seed.

Library functions never pick a device themselves; they follow the device of the model or tensors they are given.
Only entry points (the CLI, the pipeline) call :func:`resolve_device` and :func:`seed_everything`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


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
