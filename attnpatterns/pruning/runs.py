"""Run folders of fine-tuning and pruning: their file names and run types, and what identifies the model in their
fingerprints (the rule for reusing, resuming or refusing a folder is :mod:`attnpatterns.runfolder`'s).

A run folder is reused when it holds a *finished* run of the same kind with the same fingerprint (a hash of
everything that decides its result: model weights, task examples, configuration, seed, masks); a folder holding
anything else is only replaced with ``overwrite=True``. An unfinished run (killed midway) with the same
fingerprint is started again from scratch, except structured and magnitude pruning, which resume from their last
finished step (see :mod:`attnpatterns.pruning.checkpoint`).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from attnpatterns.constants import PRUNING_LOG_FILE
from attnpatterns.models.loading import LoadedModel
from attnpatterns.runfolder import read_manifest

FINETUNE_RUN = "finetune"
PRUNING_RUN = "pruning"
METRICS_FILE = "metrics.json"
IMPORTANCE_FILE = "importance.npz"

__all__ = ["FINETUNE_RUN", "IMPORTANCE_FILE", "METRICS_FILE", "PRUNING_LOG_FILE", "PRUNING_RUN", "base_model_name",
           "model_identity"]


@lru_cache(maxsize=32)
def _weights_digest(folder: str, stamp: tuple) -> str:
    from attnpatterns.runfolder import file_sha256

    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    return hashlib.sha256("".join(file_sha256(p) for p in files).encode()).hexdigest()[:16]


def model_identity(loaded: LoadedModel) -> dict:
    """What identifies the weights: the revision for hub or bundled models, a content hash for local folders."""
    ident = {"name": loaded.name, "class": type(loaded.model).__name__, "revision": loaded.revision}
    folder = Path(loaded.path)
    if loaded.revision is None and folder.is_dir():
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())
        ident["weights_sha256"] = _weights_digest(str(folder.resolve()), stamp)
    return ident


def base_model_name(loaded: LoadedModel) -> str:
    """The pretrained model behind ``loaded``: for a fine-tuning run folder, the model it was fine-tuned from.

    Seeds of one experiment are fine-tuned into different folders; this is the name they share, so that
    survivors and comparisons can check that runs belong together.
    """
    manifest = read_manifest(loaded.path) if Path(loaded.path).is_dir() else None
    if manifest and manifest.get("run_type") == FINETUNE_RUN:
        return manifest.get("base_model") or (manifest.get("model") or {}).get("name") or loaded.name
    return loaded.name
