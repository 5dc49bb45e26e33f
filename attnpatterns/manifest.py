"""The common part of every run folder's manifest: what made it (command, versions, git commit, time), and the
file hash that manifests and checkpoints record."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

PACKAGES = ("attnpatterns", "torch", "transformers", "datasets", "numpy", "safetensors", "scikit-learn", "scipy")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the attnpatterns checkout, when it is installed from one (editable installs)."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def base_manifest(run_type: str, extra: dict | None = None) -> dict:
    manifest = {
        "run_type": run_type,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv if sys.argv and sys.argv[0] else None,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
    }
    if extra:
        manifest.update(extra)
    return manifest
