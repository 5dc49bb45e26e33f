"""Find the pieces of a run folder that a report needs: comparison results and pruning logs.

A pipeline run folder may be laid out in many ways, so discovery goes by file name, not by position:
``comparison.json`` marks a comparison folder (written by ``attnpatterns compare``), ``pruning_log.json`` a
pruning run (written by ``attnpatterns prune``). A pruning log's task and seed come from the ``manifest.json``
next to it when that names them, else from the path (a folder called ``seed_3``, ``seed3`` or ``seed-3``; a
folder named like one of the known tasks).

Pruning logs are read by their own type, :meth:`attnpatterns.pruning.result.PruningResult.from_log`, which
accepts other spellings too; the report must not fail because one log has an unexpected shape, so a log that
cannot be understood is returned with ``problem`` set and shown as such.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from attnpatterns.analysis.compare import COMPARISON_FILE
from attnpatterns.constants import MANIFEST_FILE, PRUNING_LOG_FILE
from attnpatterns.pruning.result import SCORE_KEYS, PruningLogError, PruningResult, PruningStep

_SEED_RE = re.compile(r"^seed[_\-]?(\d+)$", re.IGNORECASE)


def _of_result(name: str, doc: str) -> property:
    """An attribute of a :class:`PruningLog` that its result holds (None when the file is not JSON)."""
    return property(lambda self: None if self.result is None else getattr(self.result, name), doc=doc)


@dataclass
class PruningLog:
    """One pruning run found in a run folder (one task, one seed): its log read as a :class:`PruningResult`,
    and its steps. ``problem`` says why steps could not be read."""

    source: str
    task: str | None = None
    seed: int | str | None = None
    steps: list[PruningStep] = field(default_factory=list)
    result: PruningResult | None = None  # None: the file is not JSON
    problem: str | None = None

    method = _of_result("method", '"structured", "magnitude", or a control such as "random" / "bad"')
    metric = _of_result("metric", "the metric that drove pruning")
    full_score = _of_result("full_score", "the full model's score")
    target = _of_result("target", "the score a step had to reach to be kept (threshold x full score)")


def load_pruning_log(path: str | Path, task: str | None = None, seed: int | str | None = None) -> PruningLog:
    """Read ``pruning_log.json`` (the file or its folder). A missing file is an error; a file whose content
    cannot be understood gives a log with ``problem`` set instead."""
    path = Path(path)
    file = path / PRUNING_LOG_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"pruning log {file} does not exist; pass a pruning run folder or its {PRUNING_LOG_FILE}"
        )
    log = PruningLog(source=str(file), task=task, seed=seed)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        log.problem = f"not valid JSON ({err})"
        return log
    if isinstance(data, Mapping):  # other code's logs may name the task and seed (attnpatterns' manifest does)
        log.task = log.task or _task_name(data.get("task"))
        if log.seed is None and data.get("seed") is not None:
            log.seed = data.get("seed")
    try:
        log.result = PruningResult.from_log(data)
    except PruningLogError as err:
        log.result, log.problem = err.result, str(err)
        return log
    log.steps = log.result.step_records()
    if not log.steps:
        log.problem = "the log has no steps"
    elif all(s.score is None for s in log.steps):
        log.problem = f"no step has a score (looked for {', '.join(SCORE_KEYS)})"
    return log


def find_pruning_logs(root: str | Path, tasks: Iterable[str] = ()) -> list[PruningLog]:
    """Every ``pruning_log.json`` under ``root``, with task and seed filled in where they can be found.

    With one known task, logs whose task cannot be found are assigned to it.
    """
    root = Path(root)
    tasks = list(tasks)
    logs = []
    for file in sorted(root.rglob(PRUNING_LOG_FILE)):
        task, seed = _task_and_seed(file, root, tasks)
        log = load_pruning_log(file, task=task, seed=seed)
        if log.task is None and len(tasks) == 1:
            log.task = tasks[0]
        logs.append(log)
    return logs


def find_comparisons(root: str | Path) -> list[Path]:
    """Folders under ``root`` (``root`` included) holding a ``comparison.json``."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob(COMPARISON_FILE))


def read_run_manifest(root: str | Path) -> dict | None:
    """The run folder's own ``manifest.json`` (the pipeline's), if there is a readable one."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _task_and_seed(file: Path, root: Path, tasks: list[str]) -> tuple[str | None, Any]:
    task = seed = None
    manifest = file.parent / MANIFEST_FILE
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        if isinstance(data, Mapping):
            scopes = [data] + [
                v for k, v in data.items() if k in ("config", "args", "options") and isinstance(v, Mapping)
            ]
            task = next((_task_name(s.get("task")) for s in scopes if s.get("task") is not None), None)
            seed = next((s.get("seed") for s in scopes if s.get("seed") is not None), None)
    try:
        parts = file.parent.relative_to(root).parts
    except ValueError:
        parts = file.parent.parts
    if seed is None:
        for part in reversed(parts):
            match = _SEED_RE.match(part)
            if match:
                seed = int(match.group(1))
                break
    if task is None:
        lowered = {t.lower(): t for t in tasks}
        task = next((lowered[p.lower()] for p in reversed(parts) if p.lower() in lowered), None)
    return task, seed


def _task_name(value) -> str | None:
    """A task as recorded by a manifest: a name, or an object with a "name" (``Task.describe()``)."""
    if isinstance(value, Mapping):
        value = value.get("name")
    return None if value is None else str(value)
