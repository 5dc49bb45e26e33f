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
from collections.abc import Iterable, Mapping, Sequence
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
from attnpatterns.data.records import InputError
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


Head = tuple[int, int]  # (layer, original head id)
_MODEL_NAME_KEYS = ("path", "name_or_path", "name", "source", "id")


@dataclass
class Survivors:
    """The super-survivors of one task: heads (and MLPs) kept by pruning in every seed.

    The one type for ``survivors.json``: :func:`compute_survivors` makes it from the seeds' masks (then
    ``head_masks`` / ``mlp_masks`` hold them), :meth:`save` writes the folder and :meth:`load` reads it back (the
    comparison's input). ``mlps`` is None when not every seed had an MLP mask. Malformed input raises
    :class:`~attnpatterns.data.records.InputError` saying what is wrong.
    """

    n_layers: int
    n_heads: int
    heads: list[Head]
    model: str | None = None
    task: str | None = None
    seeds: list = field(default_factory=list)
    mlps: list[int] | None = field(default_factory=list)
    frequency: np.ndarray | None = None  # (L, H) survival frequency over seeds, to 6 decimals
    kappa: float | None = None
    source: str | None = None  # the file it was loaded from
    heads_kept_per_seed: list[int] | None = None
    mlps_kept_per_seed: list[int] | None = None
    sources: list[str] = field(default_factory=list)  # the pruning runs it was computed from
    head_masks: np.ndarray | None = None  # (S, L, H), when computed from the seeds' masks
    mlp_masks: np.ndarray | None = None  # (S, L)

    def __post_init__(self) -> None:
        where = self.source or "survivors"
        if self.n_layers <= 0 or self.n_heads <= 0:
            raise InputError(f"{where}: n_layers and n_heads must be positive")
        heads = []
        for item in self.heads:
            try:
                layer, head = (int(x) for x in item)
            except (TypeError, ValueError) as err:
                raise InputError(f"{where}: super_survivor_heads must be [layer, head] pairs") from err
            if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
                raise InputError(
                    f"{where}: super-survivor head ({layer}, {head}) lies outside the {self.n_layers} x "
                    f"{self.n_heads} head grid"
                )
            heads.append((layer, head))
        if len(set(heads)) != len(heads):
            raise InputError(f"{where}: super_survivor_heads lists a head twice")
        self.heads = sorted(heads)
        if self.frequency is not None:
            freq = np.asarray(self.frequency)
            if not np.issubdtype(freq.dtype, np.floating):  # computed frequencies keep their dtype (and digits)
                freq = freq.astype(float)
            if freq.shape != (self.n_layers, self.n_heads):
                raise InputError(
                    f"{where}: head_survival_frequency has shape {freq.shape}, expected "
                    f"({self.n_layers}, {self.n_heads})"
                )
            if np.any((freq < 0) | (freq > 1)) or np.isnan(freq).any():
                raise InputError(f"{where}: head_survival_frequency must lie in [0, 1]")
            self.frequency = freq

    @property
    def head_mask(self) -> np.ndarray:
        """(L, H) bool, True for a super-survivor."""
        mask = np.zeros((self.n_layers, self.n_heads), dtype=bool)
        for layer, head in self.heads:
            mask[layer, head] = True
        return mask

    @property
    def super_head_mask(self) -> np.ndarray:
        """(L, H) float32, 1 for a super-survivor: the head mask that extraction takes."""
        return self.head_mask.astype(np.float32)

    @property
    def super_mlp_mask(self) -> np.ndarray | None:
        """(L,) float32, 1 for an MLP kept in every seed; None without MLP masks."""
        if self.mlps is None:
            return None
        mask = np.zeros(self.n_layers, dtype=np.float32)
        mask[list(self.mlps)] = 1
        return mask

    @property
    def head_frequency(self) -> np.ndarray | None:
        return self.frequency

    @property
    def all_heads(self) -> list[Head]:
        return [(a, b) for a in range(self.n_layers) for b in range(self.n_heads)]

    def to_dict(self) -> dict:
        """The content of ``survivors.json`` (plus ``source`` when it was loaded from a file)."""
        data = {
            "model": self.model,
            "task": self.task,
            "seeds": list(self.seeds),
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "super_survivor_heads": [[int(l), int(h)] for l, h in self.heads],
            "super_survivor_mlps": None if self.mlps is None else [int(l) for l in self.mlps],
            "head_survival_frequency": None if self.frequency is None else self.frequency.tolist(),
            "fleiss_kappa_heads": self.kappa,
            "heads_kept_per_seed": self.heads_kept_per_seed,
            "mlps_kept_per_seed": self.mlps_kept_per_seed,
            "sources": list(self.sources),
        }
        if self.source is not None:
            data["source"] = self.source
        return data

    @classmethod
    def from_dict(cls, data: Mapping, source: str | None = None) -> Survivors:
        where = source or "survivors"
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a JSON object as written by `attnpatterns survivors`")
        missing = [k for k in ("n_layers", "n_heads", "super_survivor_heads") if k not in data]
        if missing:
            raise InputError(
                f"{where}: missing key(s) {', '.join(missing)}; is this the survivors.json written by "
                "`attnpatterns survivors`?"
            )
        try:
            n_layers, n_heads = int(data["n_layers"]), int(data["n_heads"])
        except (TypeError, ValueError) as err:
            raise InputError(f"{where}: n_layers and n_heads must be integers") from err
        kappa = data.get("fleiss_kappa_heads")
        seeds = data.get("seeds") or []
        if isinstance(seeds, (int, str)):
            seeds = [seeds]
        model = data.get("model")
        if isinstance(model, Mapping):  # a model recorded as a manifest entry: its path, else its name
            model = next((model[k] for k in _MODEL_NAME_KEYS if model.get(k)), None)
        mlps = data.get("super_survivor_mlps")
        return cls(
            n_layers=n_layers,
            n_heads=n_heads,
            heads=list(data.get("super_survivor_heads") or []),
            model=None if model is None else str(model),
            task=None if data.get("task") is None else str(data.get("task")),
            seeds=list(seeds),
            mlps=None if mlps is None else [int(x) for x in mlps],
            frequency=data.get("head_survival_frequency"),
            kappa=None if kappa is None else float(kappa),
            source=data.get("source", source) if source is None else source,
            heads_kept_per_seed=data.get("heads_kept_per_seed"),
            mlps_kept_per_seed=data.get("mlps_kept_per_seed"),
            sources=list(data.get("sources") or []),
        )

    @classmethod
    def load(cls, path: Path | str) -> Survivors:
        """Load ``survivors.json`` (the file, or the folder ``attnpatterns survivors`` wrote). When the folder
        also holds ``super_survivors_head_mask.npy``, it must agree with the JSON's list of heads."""
        path = Path(path)
        file = path / SURVIVORS_FILE if path.is_dir() else path
        if not file.is_file():
            raise InputError(
                f"{path} holds no {SURVIVORS_FILE}; pass the output folder of `attnpatterns survivors`"
                if path.is_dir()
                else f"survivors file {path} does not exist"
            )
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{file} is not valid JSON ({err})") from err
        survivors = cls.from_dict(data, source=str(file))
        mask_file = file.parent / SUPER_HEAD_MASK_FILE
        if mask_file.is_file():
            mask = np.load(mask_file, allow_pickle=False)
            if mask.shape != (survivors.n_layers, survivors.n_heads):
                raise InputError(
                    f"{mask_file} has shape {mask.shape} but {file.name} describes a {survivors.n_layers} x "
                    f"{survivors.n_heads} head grid"
                )
            if not np.array_equal(mask > 0.5, survivors.head_mask):
                raise InputError(
                    f"{mask_file} and {file} disagree on which heads are super-survivors; rerun "
                    "`attnpatterns survivors`"
                )
        return survivors

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
        if self.mlps is not None:
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


def load_survivors(path: Path | str) -> Survivors:
    """:meth:`Survivors.load`."""
    return Survivors.load(path)


def read_survivors(path: Path | str) -> dict:
    """``survivors.json`` as a dict, with the super-survivor masks as arrays (for scripts and notebooks)."""
    survivors = Survivors.load(path)
    data = survivors.to_dict()
    data["super_survivors_head_mask"] = survivors.super_head_mask
    data["super_survivors_mlp_mask"] = survivors.super_mlp_mask
    return data


def compute_survivors(seed_masks: Sequence[SeedMasks], task: str | None = None, model: str | None = None) -> Survivors:
    """Combine the masks of several seeds of one task (all of one model and shape).

    Super-survivors are the heads (and MLPs) kept in every seed: S = {(l, h) : m_s[l, h] = 1 for all seeds s}, the
    elementwise product of the seeds' 0/1 masks, as ``src/compute_super_masks.py`` in Prasanna et al.'s code
    (sai-prasanna/bert-experiments) computes them (``super_head *= head_mask`` over the seeds). The per-head
    survival frequency is the mean of the masks over seeds; Fleiss' κ is in the module docstring.
    """
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
    super_heads = np.all(heads == 1, axis=0)
    super_mlps = None if mlps is None else np.flatnonzero(np.all(mlps == 1, axis=0)).tolist()
    return Survivors(
        n_layers=int(heads.shape[1]),
        n_heads=int(heads.shape[2]),
        heads=[(int(l), int(h)) for l, h in zip(*np.nonzero(super_heads))],
        model=model or (next(iter(models)) if models else None),
        task=task or next(iter(tasks)),
        seeds=seeds,
        mlps=super_mlps,
        frequency=np.round(heads.mean(axis=0), 6),
        kappa=fleiss_kappa(heads),
        heads_kept_per_seed=[int(m.sum()) for m in heads],
        mlps_kept_per_seed=None if mlps is None else [int(m.sum()) for m in mlps],
        sources=[str(m.path) for m in seed_masks if m.path is not None],
        head_masks=heads,
        mlp_masks=mlps,
    )
