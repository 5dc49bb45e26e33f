"""The common part of every run folder: its manifest (what made it: command, versions, git commit, time), the
file hash that manifests and checkpoints record, and the rule for reusing or refusing an existing output folder."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import shutil
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


class RunExistsError(FileExistsError):
    """The output folder holds something other than this run; pass overwrite=True (--overwrite) to replace it."""


def read_manifest(folder: str | Path) -> dict | None:
    """The run's ``manifest.json``, or None when there is none or it is not valid JSON."""
    from attnpatterns.constants import MANIFEST_FILE

    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def prepare_run_folder(
    out: str | Path, run_type: str, fingerprint: str, overwrite: bool = False, resume_unfinished: bool = False
) -> bool:
    """Decide what to do with an output folder; True means "``out`` holds this run: reuse (or resume) it".

    - missing or empty: False (start afresh);
    - the same run (``run_type`` and ``fingerprint`` in its manifest) and not ``overwrite``: True when it is
      complete, or unfinished and ``resume_unfinished`` (runs that can continue where they stopped); an unfinished
      run that cannot resume is emptied and False returned;
    - anything else: :class:`RunExistsError` unless ``overwrite``, which empties the folder (False).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"{out} exists and is not a folder; choose another --output.")
    if not out.exists() or not any(out.iterdir()):
        return False
    old = read_manifest(out)
    same = old is not None and old.get("run_type") == run_type and old.get("fingerprint") == fingerprint
    if same and not overwrite and (resume_unfinished or old.get("status") == "complete"):
        return True
    if not same and not overwrite:
        article = "an" if run_type[:1].lower() in "aeiou" else "a"
        if old:
            what = f"a different {old.get('run_type', 'unknown')} run"
        else:
            what = f"files that are not {article} {run_type} run"
        raise RunExistsError(f"{out} already holds {what}. Choose another --output, or pass --overwrite to replace it.")
    shutil.rmtree(out)
    return False
