"""What identifies a loaded model in run fingerprints and manifests: its weights, and the pretrained model behind it.

Fine-tuning and pruning runs put :func:`model_identity` into their fingerprints (so a run folder is reused only for
the same weights) and :func:`base_model_name` into their manifests (so that the seeds of one experiment, fine-tuned
into different folders, can be checked to belong together). A fine-tuning run folder is itself a loadable model
folder; :data:`FINETUNE_RUN` is the run type its manifest names.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from attnpatterns.models.loading import LoadedModel
from attnpatterns.runfolder import file_sha256, read_manifest

#: The run type of a fine-tuning run folder (written by :mod:`attnpatterns.finetuning`, read here).
FINETUNE_RUN = "finetune"


@lru_cache(maxsize=32)
def _weights_digest(folder: str, stamp: tuple) -> str:
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
