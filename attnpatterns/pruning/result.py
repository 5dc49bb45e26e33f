"""The result of a pruning run: the kept subnetwork, the scores, and the log of every step.

``pruning_log.json`` is a JSON object::

    method, metric, threshold, full_score, target (= threshold x full_score), final_score,
    final: {heads_left, heads_total, mlps_left, mlps_total | weights_left, weights_total, sparsity},
    config: the settings of the run,
    steps: [{step, phase, score, passed, heads_left, mlps_left, pruned_heads [[layer, head], ...],
             pruned_mlps [layer, ...] | sparsity, seconds}, ...]

Step 0 is the full model (phase ``full``). A step that fails the threshold is logged too (``passed: false``); the
saved masks are those of the last step that passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.constants import PRUNING_LOG_FILE
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.runfolder import write_json

#: The importance scores of a structured pruning run (heads and MLPs), saved beside the log.
IMPORTANCE_FILE = "importance.npz"


@dataclass
class PruningResult:
    method: str
    metric: str
    threshold: float
    full_score: float
    final_score: float
    subnetwork: Subnetwork
    steps: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    head_importance: np.ndarray | None = None  # importance under the final masks (structured pruning)
    mlp_importance: np.ndarray | None = None

    @property
    def head_mask(self) -> np.ndarray | None:
        return self.subnetwork.head_mask

    @property
    def mlp_mask(self) -> np.ndarray | None:
        return self.subnetwork.mlp_mask

    def log(self) -> dict:
        return {
            "method": self.method,
            "metric": self.metric,
            "threshold": self.threshold,
            "full_score": self.full_score,
            "target": self.threshold * self.full_score,
            "final_score": self.final_score,
            "final": self.subnetwork.summary(),
            "config": self.config,
            "steps": self.steps,
        }

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.subnetwork.save(folder)
        if self.head_importance is not None:
            np.savez(folder / IMPORTANCE_FILE, head=self.head_importance, mlp=self.mlp_importance)
        write_json(folder / PRUNING_LOG_FILE, self.log())

    @classmethod
    def load(cls, folder: Path | str) -> PruningResult:
        folder = Path(folder)
        log_path = folder / PRUNING_LOG_FILE
        if not log_path.is_file():
            raise ValueError(f"{folder} is not a pruning run (no {PRUNING_LOG_FILE}); run `attnpatterns prune` first.")
        log = json.loads(log_path.read_text(encoding="utf-8"))
        head = mlp = None
        if (folder / IMPORTANCE_FILE).is_file():
            with np.load(folder / IMPORTANCE_FILE) as data:
                head, mlp = data["head"], data["mlp"]
        return cls(
            method=log["method"],
            metric=log["metric"],
            threshold=log["threshold"],
            full_score=log["full_score"],
            final_score=log["final_score"],
            subnetwork=Subnetwork.load(folder),
            steps=log["steps"],
            config=log.get("config", {}),
            head_importance=head,
            mlp_importance=mlp,
        )
