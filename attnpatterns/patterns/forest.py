"""A random forest over the classifier's scale-free feature vector, stored as plain arrays.

The pattern classifier averages its CNN ensemble with this forest (``ModelConfig.forest_weight``). The forest sees
only the feature vector of :mod:`attnpatterns.patterns.preprocess` (diagonal-offset and column profiles, entropies,
token-level and coverage statistics), the quantities the annotation guideline phrases its rules in ("lit in about
two thirds of the rows"), and on the project's corpus it was the stronger of the two: see the CV report of the
shipped checkpoints, which scores the CNN, the forest and their mix separately.

Training uses scikit-learn's :class:`~sklearn.ensemble.RandomForestClassifier` (``class_weight =
"balanced_subsample"``). Each fitted tree is then read through its public ``tree_`` attributes into flat arrays
(children, split feature, threshold, class distribution per node), so that a checkpoint keeps the forest in its
safetensors file and loading never unpickles anything; :meth:`TreeForest.predict_proba` walks all trees at once
with NumPy and gives the same probabilities as scikit-learn's ``predict_proba``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnpatterns.constants import PATTERN_TYPES

#: Prefix of the forest's tensors in a checkpoint's safetensors file.
STATE_PREFIX = "forest."
_ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")


@dataclass
class TreeForest:
    """Trees as flat arrays: node ``i`` splits on ``feature[i] <= threshold[i]`` (go to ``left[i]``, else
    ``right[i]``) or is a leaf (``left[i] == -1``) whose class distribution is ``value[i]``; ``roots`` holds the
    first node of every tree."""

    left: np.ndarray  #: (n_nodes,) int32, -1 at leaves
    right: np.ndarray  #: (n_nodes,) int32
    feature: np.ndarray  #: (n_nodes,) int32, -2 at leaves
    threshold: np.ndarray  #: (n_nodes,) float64
    value: np.ndarray  #: (n_nodes, n_classes) float32, rows sum to 1
    roots: np.ndarray  #: (n_trees,) int32

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.left.shape[0])

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        y: np.ndarray,
        n_trees: int = 200,
        min_samples_leaf: int = 2,
        seed: int = 0,
        n_classes: int = len(PATTERN_TYPES),
    ) -> TreeForest:
        """Fit a class-balanced random forest on ``vectors`` (N, V) with labels ``y`` (N,) in ``range(n_classes)``."""
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(
            n_estimators=n_trees, min_samples_leaf=min_samples_leaf, class_weight="balanced_subsample",
            random_state=seed, n_jobs=1,
        )
        forest.fit(np.asarray(vectors, dtype=np.float32), np.asarray(y))
        return cls.from_sklearn(forest, n_classes)

    @classmethod
    def from_sklearn(cls, forest, n_classes: int = len(PATTERN_TYPES)) -> TreeForest:
        """Read a fitted scikit-learn forest (classes must be integers in ``range(n_classes)``)."""
        classes = np.asarray(forest.classes_, dtype=np.int64)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            is_leaf = tree.children_left < 0
            parts["left"].append(np.where(is_leaf, -1, tree.children_left + offset))
            parts["right"].append(np.where(is_leaf, -1, tree.children_right + offset))
            parts["feature"].append(np.where(is_leaf, -2, tree.feature))
            parts["threshold"].append(tree.threshold)
            counts = tree.value[:, 0, :]  # (nodes, classes present): weighted counts or fractions
            value = np.zeros((tree.node_count, n_classes))
            value[:, classes] = counts / np.clip(counts.sum(axis=1, keepdims=True), 1e-12, None)
            parts["value"].append(value)
            parts["roots"].append(np.array([offset]))
            offset += tree.node_count
        return cls(
            left=np.concatenate(parts["left"]).astype(np.int32),
            right=np.concatenate(parts["right"]).astype(np.int32),
            feature=np.concatenate(parts["feature"]).astype(np.int32),
            threshold=np.concatenate(parts["threshold"]).astype(np.float64),
            value=np.concatenate(parts["value"]).astype(np.float32),
            roots=np.concatenate(parts["roots"]).astype(np.int32),
        )

    def predict_proba(self, vectors: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """Mean leaf distribution over the trees, (N, n_classes) float32."""
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().cpu().numpy()
        # scikit-learn compares float32 features with float64 thresholds; do the same to get the same leaves
        x_all = np.asarray(vectors, dtype=np.float32).astype(np.float64)
        out = np.empty((x_all.shape[0], self.value.shape[1]), dtype=np.float32)
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start : start + batch_size]
            node = np.broadcast_to(self.roots, (x.shape[0], self.n_trees)).copy()  # (n, T)
            rows = np.arange(x.shape[0])[:, None]
            for _ in range(self.n_nodes):  # bounded by the deepest tree; every step goes one level down
                left = self.left[node]
                inner = left >= 0
                if not inner.any():
                    break
                go_left = x[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
                node = np.where(inner, np.where(go_left, left, self.right[node]), node)
            out[start : start + x.shape[0]] = self.value[node].mean(axis=1)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The arrays as tensors under :data:`STATE_PREFIX`, for a safetensors file."""
        return {STATE_PREFIX + name: torch.from_numpy(np.ascontiguousarray(getattr(self, name))) for name in _ARRAYS}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> TreeForest:
        """Inverse of :meth:`state_dict`; raises ``ValueError`` when arrays are missing or inconsistent."""
        missing = [STATE_PREFIX + n for n in _ARRAYS if STATE_PREFIX + n not in state]
        if missing:
            raise ValueError(f"the forest tensors {', '.join(missing)} are missing")
        arrays = {name: state[STATE_PREFIX + name].numpy() for name in _ARRAYS}
        forest = cls(**arrays)
        n = forest.n_nodes
        shapes_ok = (all(arrays[k].shape == (n,) for k in ("right", "feature", "threshold"))
                     and arrays["value"].shape[0] == n)
        links = np.concatenate([forest.left, forest.right, forest.roots])
        if not shapes_ok or links.max(initial=-1) >= n or (forest.roots < 0).any():
            raise ValueError("the forest tensors are inconsistent (node counts or links do not match)")
        return forest

    def nbytes(self) -> int:
        return int(sum(getattr(self, name).nbytes for name in _ARRAYS))
