"""Survivors across seeds: super-survivors, per-head survival frequency, Fleiss' κ, and the heatmap.

Masks come from pruning run folders (their manifests give task, seed and model) or from folders in the layout the
paper's authors published, ``masks/heads_mlps/<TASK>/seed_<S>/head_mask.npy`` (+ ``mlp_mask.npy``): the task is
then the name of the folder above ``seed_<S>`` and the seed the number in its name. :func:`find_mask_sets` accepts
any mix of both and groups them by task.

Control runs (``--method random`` / ``bad``) found next to the real ones form groups of their own
(``<task>-random``, ``<task>-bad``).

Fleiss' κ treats every head as a subject and every seed as a rater choosing "kept" or "pruned". It is undefined
(reported as None / null) with fewer than two seeds or when every head gets the same verdict from every seed.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.constants import (
    HEAD_MASK_FILE,
    MLP_MASK_FILE,
    SUPER_HEAD_MASK_FILE,
    SUPER_MLP_MASK_FILE,
    SURVIVORS_FILE,
)
from attnpatterns.masking.files import MaskError, load_mask
from attnpatterns.runfolder import check_output_folder, fingerprint, open_run_folder, read_manifest, write_json

HEATMAP_FILE = "survival_heatmap.png"
#: Run type in the manifest of a survivors folder.
SURVIVORS_RUN = "survivors"
_SEED_FOLDER = re.compile(r"^seed[_-]?(\d+)$", re.IGNORECASE)


@dataclass
class SeedMasks:
    """The masks of one pruning run (one seed)."""

    task: str
    seed: int | None
    head_mask: np.ndarray  # (L, H)
    mlp_mask: np.ndarray | None  # (L,)
    model: str | None = None
    path: Path | None = None
    group: str | None = None  # folder that holds the seed folders (published layout), to tell tasks apart


def read_seed_masks(folder: Path | str) -> SeedMasks:
    """Masks of one folder: a pruning run (task, seed, model from the manifest) or a published ``seed_<S>``."""
    folder = Path(folder)
    head = load_mask(folder, HEAD_MASK_FILE)
    if head.ndim != 2:
        raise MaskError(f"{folder / HEAD_MASK_FILE} has shape {head.shape}; a head mask is layers x heads.")
    mlp = load_mask(folder, MLP_MASK_FILE) if (folder / MLP_MASK_FILE).is_file() else None
    if mlp is not None and mlp.shape != (head.shape[0],):
        raise MaskError(f"{folder / MLP_MASK_FILE} has shape {mlp.shape} but the head mask has {head.shape[0]} layers.")
    manifest = read_manifest(folder) or {}
    match = _SEED_FOLDER.match(folder.name)
    seed = manifest.get("seed", int(match.group(1)) if match else None)
    task = (manifest.get("task") or {}).get("name") if isinstance(manifest.get("task"), dict) else None
    method = manifest.get("method", "structured")
    if task is not None and method != "structured":
        task = f"{task}-{method}"  # controls are combined apart from the real pruning runs
    group = None
    if task is None:
        task = folder.parent.name if match else folder.name
        group = str(folder.parent.resolve()) if match else None
    model = manifest.get("base_model")
    if model is None and isinstance(manifest.get("model"), dict):
        model = manifest["model"].get("name")
    return SeedMasks(task, None if seed is None else int(seed), head, mlp, model, folder, group)


def find_mask_sets(paths: Iterable[Path | str]) -> dict[str, list[SeedMasks]]:
    """Every ``head_mask.npy`` at or below ``paths``, read and grouped by task (sorted by seed).

    Published folders with the same task name under different parents (``heads/CoLA`` and ``heads_mlps/CoLA``)
    stay apart, named by their parent too.
    """
    found: list[SeedMasks] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise MaskError(f"{path} does not exist; pass pruning run folders or a folder of published masks.")
        files = [path / HEAD_MASK_FILE] if (path / HEAD_MASK_FILE).is_file() else sorted(path.rglob(HEAD_MASK_FILE))
        for file in files:
            if file.parent.resolve() in seen:
                continue
            seen.add(file.parent.resolve())
            found.append(read_seed_masks(file.parent))
    if not found:
        raise MaskError(
            f"no {HEAD_MASK_FILE} at or below {', '.join(map(str, paths))}; pass pruning run folders (written by "
            "`attnpatterns prune --method structured`) or a folder in the layout <TASK>/seed_<S>/head_mask.npy."
        )
    groups: dict[tuple[str, str | None], list[SeedMasks]] = {}
    for item in found:
        groups.setdefault((item.task, item.group), []).append(item)
    names: dict[str, int] = {}
    for task, _ in groups:
        names[task] = names.get(task, 0) + 1
    out: dict[str, list[SeedMasks]] = {}
    for (task, group), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        name = task if names[task] == 1 or group is None else f"{Path(group).parent.name}/{task}"
        out[name] = sorted(items, key=lambda m: (m.seed is None, m.seed if m.seed is not None else 0, str(m.path)))
    return out


def fleiss_kappa(masks: np.ndarray) -> float | None:
    """Fleiss' κ of binary masks (seeds x subjects...): subjects are the mask entries, raters the seeds."""
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    masks = np.asarray(masks)
    if masks.shape[0] < 2:
        return None
    ratings = masks.reshape(masks.shape[0], -1).T.astype(int)  # (subjects, raters), categories 0/1
    table, _ = aggregate_raters(ratings, n_cat=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(_fleiss(table, method="fleiss"))
    return value if np.isfinite(value) else None


@dataclass
class Survivors:
    task: str
    model: str | None
    seeds: list[int | None]
    head_masks: np.ndarray  # (S, L, H)
    mlp_masks: np.ndarray | None  # (S, L), None unless every seed has an MLP mask
    sources: list[str] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return int(self.head_masks.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.head_masks.shape[2])

    @property
    def super_head_mask(self) -> np.ndarray:
        return np.all(self.head_masks == 1, axis=0).astype(np.float32)

    @property
    def super_mlp_mask(self) -> np.ndarray | None:
        return None if self.mlp_masks is None else np.all(self.mlp_masks == 1, axis=0).astype(np.float32)

    @property
    def head_frequency(self) -> np.ndarray:
        return self.head_masks.mean(axis=0)

    @property
    def kappa(self) -> float | None:
        return fleiss_kappa(self.head_masks)

    def to_dict(self) -> dict:
        mlp = self.super_mlp_mask
        return {
            "model": self.model,
            "task": self.task,
            "seeds": self.seeds,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "super_survivor_heads": [[int(l), int(h)] for l, h in zip(*np.nonzero(self.super_head_mask))],
            "super_survivor_mlps": None if mlp is None else [int(l) for l in np.flatnonzero(mlp)],
            "head_survival_frequency": np.round(self.head_frequency, 6).tolist(),
            "fleiss_kappa_heads": self.kappa,
            "heads_kept_per_seed": [int(m.sum()) for m in self.head_masks],
            "mlps_kept_per_seed": None if self.mlp_masks is None else [int(m.sum()) for m in self.mlp_masks],
            "sources": self.sources,
        }

    def fingerprint(self, heatmap: bool = True) -> str:
        """A hash of the saved content: the same masks give the same folder."""
        return fingerprint({"survivors": self.to_dict(), "heatmap": heatmap})

    def check_folder(self, folder: Path | str, heatmap: bool = True, overwrite: bool = False) -> None:
        """Raise :class:`~attnpatterns.runfolder.RunExistsError` if :meth:`save` would refuse ``folder``."""
        check_output_folder(folder, SURVIVORS_RUN, self.fingerprint(heatmap), overwrite)

    def save(self, folder: Path | str, heatmap: bool = True, overwrite: bool = False) -> None:
        """Write ``survivors.json``, the super-survivor masks, the heatmap and a manifest into ``folder``.

        A folder holding these very survivors is left as it is; one holding anything else is refused unless
        ``overwrite`` and it is an attnpatterns run (:func:`attnpatterns.runfolder.open_run_folder`).
        """
        run = open_run_folder(folder, SURVIVORS_RUN, self.fingerprint(heatmap), overwrite)
        if run.reuse:
            return
        folder = run.path
        run.start({"task": self.task, "model": self.model, "seeds": self.seeds, "sources": self.sources})
        write_json(folder / SURVIVORS_FILE, self.to_dict())
        np.save(folder / SUPER_HEAD_MASK_FILE, self.super_head_mask)
        if self.mlp_masks is not None:
            np.save(folder / SUPER_MLP_MASK_FILE, self.super_mlp_mask)
        if heatmap:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            from attnpatterns.plotting.survivors import plot_survival_heatmap

            kappa = self.kappa
            title = (f"{self.task}: {int(self.super_head_mask.sum())} super-survivor heads over "
                     f"{len(self.seeds)} seeds, Fleiss' κ = {'n/a' if kappa is None else f'{kappa:.2f}'}")
            ax = plot_survival_heatmap(self.head_frequency, self.super_head_mask, title=title)
            ax.figure.tight_layout()
            ax.figure.savefig(folder / HEATMAP_FILE, dpi=120)
            plt.close(ax.figure)
        run.finish()


def load_survivors(folder: Path | str) -> dict:
    """The ``survivors.json`` of a folder written by ``attnpatterns survivors``, with its masks as arrays."""
    folder = Path(folder)
    path = folder / SURVIVORS_FILE
    if not path.is_file():
        raise MaskError(f"{folder} has no {SURVIVORS_FILE}; run `attnpatterns survivors` first.")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["super_survivors_head_mask"] = np.load(folder / SUPER_HEAD_MASK_FILE, allow_pickle=False)
    mlp = folder / SUPER_MLP_MASK_FILE
    data["super_survivors_mlp_mask"] = np.load(mlp, allow_pickle=False) if mlp.is_file() else None
    return data


def compute_survivors(seed_masks: Sequence[SeedMasks], task: str | None = None, model: str | None = None) -> Survivors:
    """Combine the masks of several seeds of one task (all of one model and shape)."""
    if not seed_masks:
        raise MaskError("no masks to combine; give at least one pruning run.")
    shapes = {m.head_mask.shape for m in seed_masks}
    if len(shapes) > 1:
        raise MaskError(
            f"the head masks have different shapes {sorted(shapes)}; survivors combine seeds of one model only."
        )
    models = {m.model for m in seed_masks if m.model}
    if model is None and len(models) > 1:
        raise MaskError(f"the runs come from different models ({', '.join(sorted(models))}); combine one at a time.")
    tasks = {m.task for m in seed_masks}
    if task is None and len(tasks) > 1:
        raise MaskError(f"the runs are of different tasks ({', '.join(sorted(tasks))}); combine one task at a time.")
    seeds = [m.seed for m in seed_masks]
    known = [s for s in seeds if s is not None]
    if len(set(known)) != len(known):
        dupes = sorted({s for s in known if known.count(s) > 1})
        raise MaskError(f"seed(s) {dupes} appear more than once; each seed's masks should be given once.")
    heads = np.stack([m.head_mask for m in seed_masks]).astype(np.float32)
    mlps = None
    if all(m.mlp_mask is not None for m in seed_masks):
        mlps = np.stack([m.mlp_mask for m in seed_masks]).astype(np.float32)
    return Survivors(
        task=task or next(iter(tasks)),
        model=model or (next(iter(models)) if models else None),
        seeds=seeds,
        head_masks=heads,
        mlp_masks=mlps,
        sources=[str(m.path) for m in seed_masks if m.path is not None],
    )
