"""The step checkpoint of an unfinished pruning run: ``pruning_state.npz``, rewritten after every finished step.

One ``.npz`` file holds everything needed to continue (arrays, plus a JSON object stored as the bytes of the array
``meta``: the run's fingerprint, a format version and the method's scalars and step log). It is *one* file so that
a single atomic write (:func:`attnpatterns.runfolder.atomic_write_bytes`: temporary file, fsync, ``os.replace``)
replaces the whole state at once: a kill at any moment leaves either the previous finished step or the new one on
disk, never a mixture of two steps or a part of one. A kill mid-write leaves a stray temporary file beside it, which
:func:`discard_checkpoint` removes with the state once the run is complete.

A state that is missing, unreadable, of another format version or of another fingerprint is ignored (the run then
starts from its first step), so a checkpoint can only ever continue the very run that wrote it.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attnpatterns.runfolder import atomic_write_bytes

PRUNING_STATE_FILE = "pruning_state.npz"
STATE_VERSION = 1
_META = "meta"


def save_checkpoint(path: Path | str, fp: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically replace the state at ``path`` by ``meta`` (JSON-able) and ``arrays``, tagged with ``fp``."""
    if _META in arrays:
        raise ValueError(f"{_META!r} is reserved for the state's JSON part.")
    text = json.dumps({"version": STATE_VERSION, "fingerprint": fp, **meta})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{_META: np.frombuffer(text.encode("utf-8"), np.uint8)})
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path | str, fp: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    """``(meta, arrays)`` saved by :func:`save_checkpoint` for fingerprint ``fp``, or None (start afresh)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION or meta.get("fingerprint") != fp:
        return None
    return meta, arrays


def save_then_report(state, checkpoint: Callable | None, progress: Callable[[dict], None] | None) -> None:
    """Hand ``state`` to ``checkpoint``, then its last step to ``progress``.

    Saving first means a step is kept whatever ``progress`` does, and that ``progress`` only ever reports saved steps.
    """
    if checkpoint:
        checkpoint(state)
    if progress:
        progress(state.steps[-1])


def discard_checkpoint(folder: Path | str) -> None:
    """Remove the state and any temporary file a kill mid-write left behind (once the run is complete)."""
    folder = Path(folder)
    for path in (folder / PRUNING_STATE_FILE, *folder.glob(f".{PRUNING_STATE_FILE}.*.tmp")):
        path.unlink(missing_ok=True)
