"""Builders of classification tables and survivors files whose statistics are known by construction.

``table_frame(labels, n_examples)`` takes a function ``(layer, head, example) -> label`` (or a dict from head
to a label) and returns a classification-table data frame; ``write_table`` and ``write_survivors`` write the
on-disk layouts of ``attnpatterns classify`` and ``attnpatterns survivors``. Every builder takes
``**overrides`` over sane defaults: a 4-layer x 6-head model, 20 examples, raw and normed maps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from attnpatterns.analysis.tables import PatternTable, Survivors
from attnpatterns.constants import PATTERN_TYPES

N_LAYERS, N_HEADS = 4, 6
SURVIVORS = [(0, 1), (1, 3), (2, 0), (2, 5), (3, 2), (3, 4)]
PROB_COLUMNS = [f"p_{t}" for t in PATTERN_TYPES]


def all_heads(n_layers: int = N_LAYERS, n_heads: int = N_HEADS) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n_layers) for b in range(n_heads)]


def table_frame(
    label: Callable[[int, int, int], str] | str,
    heads: list[tuple[int, int]] | None = None,
    n_examples: int = 20,
    kinds: tuple[str, ...] = ("raw", "normed"),
) -> pd.DataFrame:
    """One row per (example, head, kind), labelled ``label(layer, head, example)`` (or a constant)."""
    heads = all_heads() if heads is None else heads
    rows = []
    for kind in kinds:
        for layer, head in heads:
            for ex in range(n_examples):
                lab = label if isinstance(label, str) else label(layer, head, ex)
                probs = {c: (1.0 if c == f"p_{lab}" else 0.0) for c in PROB_COLUMNS}
                rows.append(
                    {
                        "example_id": f"ex{ex}",
                        "layer": layer,
                        "head": head,
                        "kind": kind,
                        "label": lab,
                        **probs,
                    }
                )
    return pd.DataFrame(rows, columns=["example_id", "layer", "head", "kind", "label", *PROB_COLUMNS])


SURVIVOR_MLPS = (1,)  # the MLPs kept in every seed by make_survivors


def survivor_mlp_mask(mlps=SURVIVOR_MLPS, n_layers: int = N_LAYERS) -> list[float]:
    return [1.0 if layer in mlps else 0.0 for layer in range(n_layers)]


def run_manifest(
    model: str = "tiny-finetuned",
    head_mask=None,
    n_layers: int = N_LAYERS,
    n_heads: int = N_HEADS,
    mlp_mask="survivors",
    **overrides,
) -> dict:
    """An extraction-run manifest shaped like the one ``attnpatterns extract`` writes. A masked run (a
    super-survivors table) keeps the survivors' MLPs unless ``mlp_mask`` says otherwise, as the pipeline extracts it."""
    if isinstance(mlp_mask, str):
        mlp_mask = None if head_mask is None else survivor_mlp_mask(n_layers=n_layers)
    manifest = {
        "run_type": "extraction",
        "model": {
            "source": model,
            "path": f"/models/{model}",
            "name": model,
            "revision": None,
            "num_layers": n_layers,
            "num_heads": n_heads,
        },
        "head_mask": None if head_mask is None else np.asarray(head_mask, float).tolist(),
        "mlp_mask": mlp_mask,
    }
    manifest.update(overrides)
    return manifest


def classify_manifest(sha: str = "abc123", **run_overrides) -> dict:
    return {
        "run_type": "classification",
        "run_manifest": run_manifest(**run_overrides),
        "checkpoint": {
            k: {"path": f"/ckpt/{k}", "kind": k, "weights_sha256": sha} for k in ("raw", "normed")
        },
    }


def survivor_mask(heads=SURVIVORS, n_layers: int = N_LAYERS, n_heads: int = N_HEADS) -> np.ndarray:
    mask = np.zeros((n_layers, n_heads))
    for a, b in heads:
        mask[a, b] = 1
    return mask


def make_table(frame: pd.DataFrame, **manifest_overrides) -> PatternTable:
    return PatternTable.from_frame(frame, classify_manifest(**manifest_overrides), source="constructed")


def full_and_pruned(
    label_full,
    label_pruned=None,
    survivors=SURVIVORS,
    n_examples: int = 20,
    model="tiny-finetuned",
    kinds=("raw", "normed"),
) -> tuple[PatternTable, PatternTable]:
    full = make_table(table_frame(label_full, n_examples=n_examples, kinds=kinds), model=model)
    pruned = make_table(
        table_frame(label_pruned or label_full, heads=list(survivors), n_examples=n_examples, kinds=kinds),
        model=model,
        head_mask=survivor_mask(survivors),
    )
    return full, pruned


def make_survivors(
    heads=SURVIVORS, n_layers: int = N_LAYERS, n_heads: int = N_HEADS, **overrides
) -> Survivors:
    freq = np.full((n_layers, n_heads), 1 / 3)
    for a, b in heads:
        if a < n_layers and b < n_heads:
            freq[a, b] = 1.0
    kwargs = dict(
        n_layers=n_layers,
        n_heads=n_heads,
        heads=list(heads),
        model="tiny",
        task="toy",
        seeds=[0, 1, 2],
        mlps=list(SURVIVOR_MLPS),
        frequency=freq,
        kappa=0.21,
        source="constructed",
    )
    kwargs.update(overrides)
    return Survivors(**kwargs)


def write_table(
    folder: Path, frame: pd.DataFrame, manifest: dict | None = None, **manifest_overrides
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "classifications.csv", index=False)
    manifest = manifest if manifest is not None else classify_manifest(**manifest_overrides)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def write_survivors(
    folder: Path,
    heads=SURVIVORS,
    n_layers: int = N_LAYERS,
    n_heads: int = N_HEADS,
    write_mask: bool = True,
    **overrides,
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = make_survivors(heads, n_layers, n_heads)
    data = s.to_dict()
    data.pop("source")
    data.update(overrides)
    (folder / "survivors.json").write_text(json.dumps(data), encoding="utf-8")
    if write_mask:
        np.save(
            folder / "super_survivors_head_mask.npy",
            survivor_mask(heads, n_layers, n_heads).astype(np.float32),
        )
    return folder


def write_pruning_log(folder: Path, seed: int, task: str = "toy", n_steps: int = 4) -> Path:
    """A pruning run folder shaped like ``attnpatterns prune`` writes: the log object and a manifest whose
    task is ``Task.describe()``; the last step fails the threshold."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    steps = [
        {
            "step": i,
            "phase": "full" if i == 0 else "heads+mlps",
            "score": 0.9 - 0.02 * i,
            "passed": i < n_steps - 1,
            "heads_left": N_LAYERS * N_HEADS - 3 * i,
            "mlps_left": N_LAYERS - i // 2,
        }
        for i in range(n_steps)
    ]
    log = {
        "method": "structured",
        "metric": "accuracy",
        "threshold": 0.9,
        "full_score": 0.9,
        "target": 0.81,
        "final_score": steps[-2]["score"],
        "steps": steps,
    }
    (folder / "pruning_log.json").write_text(json.dumps(log), encoding="utf-8")
    manifest = {"run_type": "pruning", "task": {"name": task, "metric": "accuracy"}, "seed": seed}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder
