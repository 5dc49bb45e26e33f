"""Run folders: the one place that decides whether a command may write into a folder, and how it writes there.

Every command that writes a folder (``extract``, ``finetune``, ``prune``, ``survivors``, ``classify``, ``train``,
``compare``, ``pipeline``, ...) goes through :func:`open_run_folder` *before it writes anything*, so that a folder
it will refuse is left exactly as it was. The rule:

- a missing or empty folder is a new run;
- a folder whose ``manifest.json`` names the same run type and the same configuration fingerprint is *this* run:
  reused when complete, resumed when unfinished and the run can resume (else emptied and started again: it is this
  command's own unfinished output);
- anything else is refused with :class:`RunExistsError`. ``overwrite=True`` (``--overwrite``) replaces it only when
  it is another attnpatterns run (its manifest names one of :data:`RUN_TYPES`); a folder of anything else (a user's
  files, a damaged manifest) is never deleted: choose another output folder.

The module also holds what every run folder shares: atomic writes (a temporary file in the same folder, fsync,
``os.replace``: a kill never leaves a half-written file), the configuration fingerprint, the manifest (command,
versions, git commit, times, status ``running``/``complete``) and step markers for multi-step jobs.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

MANIFEST_FILE = "manifest.json"
#: Marker of a finished step inside a multi-step job's folder (its fingerprint and inputs).
STEP_FILE = "step.json"

#: Run types that attnpatterns writes; only folders holding one of these may be replaced with ``--overwrite``.
RUN_TYPES = frozenset(
    {
        "extraction",
        "finetune",
        "pruning",
        "survivors",
        "classification",
        "pattern-training",
        "evaluation",
        "comparison",
        "pipeline",
    }
)

PACKAGES = ("attnpatterns", "torch", "transformers", "datasets", "numpy", "safetensors", "scikit-learn", "scipy")


class RunExistsError(FileExistsError):
    """The output folder holds something other than this run; pass overwrite=True (--overwrite) to replace it."""


# -- atomic writes -------------------------------------------------------------------------------------------------
T = TypeVar("T")


def atomic_write_file(path: str | Path, write: Callable[[Path], T]) -> T:
    """Have ``write(tmp)`` write a temporary file in ``path``'s folder, then fsync it and ``os.replace`` it onto
    ``path``; returns what ``write`` returned.

    Readers see the old file or the new one, never a part of either, however the writer dies; if ``write`` or the
    replace fails, the temporary file is removed and ``path`` is untouched. ``write`` may replace the file it is
    given (e.g. a library's ``save_file(obj, tmp)``) and may read it back before returning (e.g. to hash it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        result = write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary, shared data files
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    return result


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (:func:`atomic_write_file`)."""
    atomic_write_file(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data) -> None:
    """Atomically write ``data`` as indented JSON (non-JSON values through ``str``)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path):
    """Parsed JSON of ``path``, or None when it is missing, unreadable or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


# -- hashes ----------------------------------------------------------------------------------------------------------
def fingerprint(ident) -> str:
    """16 hex digits of the SHA-256 of ``ident`` as canonical JSON: what decides a run's result, not its speed."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- manifests -------------------------------------------------------------------------------------------------------
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """The installed version of each package (None where it is not installed), read once per process: what a run
    records is the code this process imported, which a later reinstall does not change (and reading the package
    metadata again cost ~13 ms per manifest)."""
    return dict(_package_versions(tuple(names)))


@functools.lru_cache(maxsize=None)
def _package_versions(names: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    out = []
    for name in names:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def git_commit() -> str | None:
    """The commit of the attnpatterns checkout, when it is installed from one (editable installs); asked of git once
    per process, like :func:`package_versions`: the code a run records is the code this process imported, which a
    later commit does not change (and starting ``git`` again cost ~5 ms per manifest)."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def base_manifest(run_type: str, extra: dict | None = None) -> dict:
    """What every manifest records: run type, creation time, command line, package versions, git commit."""
    manifest = {
        "run_type": run_type,
        "created": _now(),
        "command": sys.argv if sys.argv and sys.argv[0] else None,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
    }
    if extra:
        manifest.update(extra)
    return manifest


def read_manifest(folder: str | Path) -> dict | None:
    """The run's ``manifest.json``, or None when there is none or it is not a JSON object."""
    data = read_json(Path(folder) / MANIFEST_FILE)
    return data if isinstance(data, dict) else None


def is_attnpatterns_run(folder: str | Path) -> bool:
    """Whether ``folder``'s manifest names a run type attnpatterns writes (so ``--overwrite`` may replace it)."""
    manifest = read_manifest(folder)
    return manifest is not None and manifest.get("run_type") in RUN_TYPES


# -- the rule ----------------------------------------------------------------------------------------------------------
def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _is_temporary(path: Path) -> bool:
    """A temporary file of :func:`atomic_write_file` (``.<name>.<random>.tmp``), left by a kill mid-write."""
    return path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp")


def check_output_folder(out: str | Path, run_type: str, fp: str | None, overwrite: bool = False) -> str:
    """Classify ``out`` for a run of ``run_type`` with fingerprint ``fp``, writing nothing.

    Returns ``"new"`` (missing or empty), ``"complete"`` or ``"unfinished"`` (this very run), or ``"replace"``
    (another attnpatterns run, and ``overwrite``). Raises :class:`RunExistsError` for everything else.
    ``fp=None`` means "any run of this type is this run" (commands whose output is rebuilt whole every time).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"{out} exists and is not a folder; choose another --output.")
    if not out.exists() or all(_is_temporary(p) for p in out.iterdir()):
        return "new"  # empty, or only what a kill during an atomic write left behind
    old = read_manifest(out)
    ours = old is not None and old.get("run_type") in RUN_TYPES
    same = ours and old.get("run_type") == run_type and (fp is None or old.get("fingerprint") == fp)
    if same and not overwrite:
        return "complete" if old.get("status", "complete") == "complete" else "unfinished"
    if ours and overwrite:
        return "replace"
    if not ours:
        hint = " (--overwrite replaces only attnpatterns runs)" if overwrite else ""
        raise RunExistsError(
            f"{out} already holds files that are not {_article(run_type)} {run_type} run; nothing was written"
            f"{hint}. Choose another --output (a new or empty folder)."
        )
    what = old.get("run_type")
    what = f"{_article(what)} {what} run" if what != run_type else f"a different {run_type} run (other settings)"
    raise RunExistsError(
        f"{out} already holds {what}; nothing was written. Choose another --output, or pass --overwrite to "
        "replace it."
    )


@dataclass
class RunFolder:
    """An output folder that :func:`open_run_folder` has cleared for one run.

    ``state`` is ``"new"`` (start afresh), ``"complete"`` (this run is already there: reuse it) or ``"resume"``
    (this run, unfinished: continue it). ``previous`` is the manifest found there, if any.
    """

    path: Path
    run_type: str
    fingerprint: str | None
    state: str
    previous: dict | None = None

    @property
    def reuse(self) -> bool:
        return self.state == "complete"

    @property
    def resume(self) -> bool:
        return self.state == "resume"

    def start(self, extra: dict | None = None) -> dict:
        """Write the manifest with status ``running`` (a resumed run keeps its creation time and counts resumes)."""
        manifest = base_manifest(self.run_type, extra={"fingerprint": self.fingerprint, "status": "running"})
        manifest.update(extra or {})
        if self.previous is not None and self.state != "new":
            manifest["created"] = self.previous.get("created", manifest["created"])
            resumed = self.previous.get("resumed", 0)
            manifest["resumed"] = resumed + (1 if self.previous.get("status") != "complete" else 0)
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / MANIFEST_FILE, manifest)
        self.manifest = manifest
        return manifest

    def finish(self, **extra) -> dict:
        """Mark the run complete (after every result file is on disk)."""
        manifest = getattr(self, "manifest", None) or read_manifest(self.path) or {}
        manifest.update(extra)
        manifest["status"] = "complete"
        manifest["finished"] = _now()
        write_json(self.path / MANIFEST_FILE, manifest)
        self.manifest = manifest
        return manifest


def open_run_folder(
    out: str | Path, run_type: str, fp: str | None, overwrite: bool = False, resume: bool = False
) -> RunFolder:
    """Decide what to do with ``out`` for this run (see the module docstring) and clear the way.

    The only thing this may delete is an attnpatterns run: another one when ``overwrite``, or this run's own
    unfinished output when the run cannot resume (``resume=False``).
    """
    out = Path(out)
    verdict = check_output_folder(out, run_type, fp, overwrite)
    previous = read_manifest(out) if verdict != "new" else None
    if verdict == "complete":
        return RunFolder(out, run_type, fp, "complete", previous)
    if verdict == "unfinished" and resume:
        return RunFolder(out, run_type, fp, "resume", previous)
    if verdict in ("unfinished", "replace"):
        shutil.rmtree(out)
    return RunFolder(out, run_type, fp, "new", None)


# -- steps of a multi-step job -----------------------------------------------------------------------------------------
def step_done(folder: str | Path, fp: str) -> bool:
    """Whether ``folder`` holds a finished step with fingerprint ``fp`` (see :func:`mark_step_done`)."""
    data = read_json(Path(folder) / STEP_FILE)
    return isinstance(data, dict) and data.get("fingerprint") == fp


def mark_step_done(folder: str | Path, fp: str, inputs: dict) -> None:
    """Record that the step in ``folder`` finished with fingerprint ``fp``; write this after its last file."""
    write_json(Path(folder) / STEP_FILE, {"fingerprint": fp, "inputs": inputs, "finished": _now()})
