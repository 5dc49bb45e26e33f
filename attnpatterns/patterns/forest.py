"""Tree models over the classifier's scale-free feature vector (a random forest or gradient boosting), as arrays.

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

:class:`BoostedTrees` is the other tree model (``ModelConfig.forest_method = "gradient-boosting"``): scikit-learn's
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` (Friedman 2001, "Greedy function approximation: a gradient
boosting machine"; histogram-based as in LightGBM, Ke et al. 2017), class-balanced, with a fixed number of
iterations and no early stopping. It is stored the same way, and its probabilities are recomputed the way the library
computes them: for every class k the raw score F_k(x) = b_k + Σ_t v_t(x) over the trees t fitted to class k (b_k the
fitted baseline, v_t(x) the value of the leaf x reaches), then p_k = exp F_k / Σ_j exp F_j (the softmax of the
multinomial log-loss; with two classes the library fits one tree per iteration for the second class, which is the
same softmax with F = 0 for the first). The feature vectors are finite (:func:`~attnpatterns.patterns.preprocess.
validate_map` refuses NaN maps), so the library's routing of missing values never applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from attnpatterns.constants import PATTERN_TYPES

#: Prefix of the forest's tensors in a checkpoint's safetensors file.
STATE_PREFIX = "forest."
_ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")
_BOOSTED_ARRAYS = ("left", "right", "feature", "threshold", "value", "roots", "tree_class", "baseline")
#: ``ModelConfig.forest_method`` values
FOREST_METHODS = ("random-forest", "gradient-boosting")


def _leaves(model, x_all: np.ndarray, batch_size: int):
    """Yield ``(start, leaf)`` per batch: the node index (n, n_trees) every row reaches in every tree.

    All (row, tree) pairs go down one level per step, and only the pairs not yet at a leaf are carried on, so a few
    deep trees do not make every pair walk their depth."""
    # scikit-learn compares float32 features with float64 thresholds; do the same to get the same leaves
    x_all = np.asarray(x_all, dtype=np.float32).astype(np.float64)
    n_trees = model.roots.shape[0]
    for start in range(0, x_all.shape[0], batch_size):
        x = x_all[start : start + batch_size]
        node = np.tile(model.roots, x.shape[0])  # (n * T,): row r, tree t at r * T + t
        active = np.flatnonzero(model.left[node] >= 0)
        while active.size:  # ends: every step goes one level down a finite tree
            here = node[active]
            go_left = x[active // n_trees, model.feature[here]] <= model.threshold[here]
            node[active] = np.where(go_left, model.left[here], model.right[here])
            active = active[model.left[node[active]] >= 0]
        yield start, node.reshape(x.shape[0], n_trees)


@dataclass
class _FlatTrees:
    """Trees as flat arrays: node ``i`` splits on ``feature[i] <= threshold[i]`` (go to ``left[i]``, else
    ``right[i]``) or is a leaf (``left[i] == -1``) holding ``value[i]``; ``roots`` holds the first node of every
    tree. Subclasses say what a leaf's value means and add their own arrays (``_arrays``)."""

    left: np.ndarray  #: (n_nodes,) int32, -1 at leaves
    right: np.ndarray  #: (n_nodes,) int32
    feature: np.ndarray  #: (n_nodes,) int32, -2 at leaves
    threshold: np.ndarray  #: (n_nodes,) float64
    value: np.ndarray  #: (n_nodes, ...) what a leaf holds (see the subclass)
    roots: np.ndarray  #: (n_trees,) int32

    _arrays: ClassVar[tuple[str, ...]] = _ARRAYS

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.left.shape[0])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The arrays as tensors under :data:`STATE_PREFIX`, for a safetensors file."""
        return {STATE_PREFIX + name: torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
                for name in self._arrays}

    @classmethod
    def _read_state(cls, state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        missing = [STATE_PREFIX + n for n in cls._arrays if STATE_PREFIX + n not in state]
        if missing:
            raise ValueError(f"the forest tensors {', '.join(missing)} are missing")
        arrays = {name: state[STATE_PREFIX + name].numpy() for name in cls._arrays}
        n = arrays["left"].shape[0]
        shapes_ok = all(arrays[k].shape == (n,) for k in ("right", "feature", "threshold")) \
            and arrays["value"].shape[0] == n
        links = np.concatenate([arrays["left"], arrays["right"], arrays["roots"]])
        if not shapes_ok or links.max(initial=-1) >= n or (arrays["roots"] < 0).any():
            raise ValueError("the forest tensors are inconsistent (node counts or links do not match)")
        return arrays

    def nbytes(self) -> int:
        return int(sum(getattr(self, name).nbytes for name in self._arrays))


def _node_arrays(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the per-tree node arrays (already offset to global node ids) in the stored dtypes."""
    return {
        "left": np.concatenate(parts["left"]).astype(np.int32),
        "right": np.concatenate(parts["right"]).astype(np.int32),
        "feature": np.concatenate(parts["feature"]).astype(np.int32),
        "threshold": np.concatenate(parts["threshold"]).astype(np.float64),
        "roots": np.concatenate(parts["roots"]).astype(np.int32),
    }


@dataclass
class TreeForest(_FlatTrees):
    """A random forest: a leaf's ``value`` is its class distribution (n_nodes, n_classes) float32, rows summing to 1;
    the forest's probabilities are the mean over the trees."""

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
        return cls(value=np.concatenate(parts["value"]).astype(np.float32), **_node_arrays(parts))

    def predict_proba(self, vectors: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """Mean leaf distribution over the trees, (N, n_classes) float32."""
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().cpu().numpy()
        out = np.empty((vectors.shape[0], self.value.shape[1]), dtype=np.float32)
        for start, node in _leaves(self, vectors, batch_size):
            out[start : start + node.shape[0]] = self.value[node].mean(axis=1)
        return out

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> TreeForest:
        """Inverse of :meth:`state_dict`; raises ``ValueError`` when arrays are missing or inconsistent."""
        return cls(**cls._read_state(state))


@dataclass(kw_only=True)
class BoostedTrees(_FlatTrees):
    """Gradient-boosted trees: ``value[i]`` (n_nodes,) float64 is a leaf's additive score (0 at inner nodes),
    ``tree_class[t]`` the class tree ``t`` scores, ``baseline`` the per-class starting score (``-inf`` for a class
    absent from the training labels, whose probability is then 0)."""

    tree_class: np.ndarray  #: (n_trees,) int32
    baseline: np.ndarray  #: (n_classes,) float64

    _arrays: ClassVar[tuple[str, ...]] = _BOOSTED_ARRAYS

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        y: np.ndarray,
        iterations: int = 300,
        learning_rate: float = 0.05,
        seed: int = 0,
        n_classes: int = len(PATTERN_TYPES),
    ) -> BoostedTrees:
        """Fit class-balanced gradient boosting on ``vectors`` (N, V) with labels ``y`` in ``range(n_classes)``."""
        y = np.asarray(y)
        present = np.unique(y)
        if present.size < 2:  # nothing to separate: the one class seen gets probability 1
            baseline = np.full(n_classes, -np.inf)
            baseline[present] = 0.0
            empty = np.zeros(0, np.int32)
            return cls(left=empty, right=empty, feature=empty, threshold=np.zeros(0), value=np.zeros(0), roots=empty,
                       tree_class=empty, baseline=baseline)
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            max_iter=iterations, learning_rate=learning_rate, class_weight="balanced", early_stopping=False,
            random_state=seed,
        )
        model.fit(np.asarray(vectors, dtype=np.float32), y)
        return cls.from_sklearn(model, n_classes)

    @classmethod
    def from_sklearn(cls, model, n_classes: int = len(PATTERN_TYPES)) -> BoostedTrees:
        """Read a fitted :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (integer classes in
        ``range(n_classes)``, numerical features only)."""
        classes = np.asarray(model.classes_, dtype=np.int64)
        per_iteration = model.n_trees_per_iteration_
        # two classes: one tree per iteration, scoring the second class against the first (held at 0)
        scored = classes[1:] if per_iteration == 1 else classes
        baseline = np.full(n_classes, -np.inf)
        baseline[classes] = 0.0
        baseline[scored] = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _BOOSTED_ARRAYS[:-1]}
        offset = 0
        for predictors in model._predictors:  # one list per iteration, one predictor per scored class
            for k, predictor in enumerate(predictors):
                nodes = predictor.nodes
                if nodes["is_categorical"].any():
                    raise ValueError("categorical splits are not supported (the feature vectors are numerical)")
                leaf = nodes["is_leaf"].astype(bool)
                parts["left"].append(np.where(leaf, -1, nodes["left"].astype(np.int64) + offset))
                parts["right"].append(np.where(leaf, -1, nodes["right"].astype(np.int64) + offset))
                parts["feature"].append(np.where(leaf, -2, nodes["feature_idx"]))
                parts["threshold"].append(nodes["num_threshold"])
                parts["value"].append(np.where(leaf, nodes["value"], 0.0))
                parts["roots"].append(np.array([offset]))
                parts["tree_class"].append(np.array([scored[k]]))
                offset += len(nodes)
        return cls(value=np.concatenate(parts["value"]).astype(np.float64),
                   tree_class=np.concatenate(parts["tree_class"]).astype(np.int32), baseline=baseline,
                   **_node_arrays(parts))

    def predict_proba(self, vectors: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """softmax(baseline + the leaf values summed per class), (N, n_classes) float32."""
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().cpu().numpy()
        n_classes = self.baseline.shape[0]
        scores = np.broadcast_to(self.baseline, (vectors.shape[0], n_classes)).copy()
        if self.n_trees:
            onehot = np.zeros((self.n_trees, n_classes))
            onehot[np.arange(self.n_trees), self.tree_class] = 1.0
            for start, node in _leaves(self, vectors, batch_size):
                scores[start : start + node.shape[0]] += self.value[node] @ onehot
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> BoostedTrees:
        """Inverse of :meth:`state_dict`; raises ``ValueError`` when arrays are missing or inconsistent."""
        arrays = cls._read_state(state)
        tree_class, n_classes = arrays["tree_class"], arrays["baseline"].shape[0]
        if tree_class.shape != arrays["roots"].shape or (
                tree_class.size and not 0 <= tree_class.min() <= tree_class.max() < n_classes):
            raise ValueError("the forest tensors are inconsistent (the trees' classes do not match)")
        return cls(**arrays)


def fit_trees(method: str, vectors: np.ndarray, y: np.ndarray, model_config, seed: int) -> TreeForest | BoostedTrees:
    """Fit the tree model ``method`` (:data:`FOREST_METHODS`) with the settings of ``model_config``
    (:class:`~attnpatterns.patterns.model.ModelConfig`)."""
    if method == "random-forest":
        return TreeForest.fit(vectors, y, model_config.forest_trees, model_config.forest_min_leaf, seed,
                              model_config.n_classes)
    if method == "gradient-boosting":
        return BoostedTrees.fit(vectors, y, model_config.boost_iterations, model_config.boost_learning_rate, seed,
                                model_config.n_classes)
    raise ValueError(f"unknown forest method {method!r}; choose one of {', '.join(FOREST_METHODS)}")


def trees_from_state_dict(method: str, state: dict[str, torch.Tensor]) -> TreeForest | BoostedTrees:
    """Load the tree model of ``method`` from a checkpoint's tensors (``ValueError`` when they do not fit)."""
    if method == "gradient-boosting":
        return BoostedTrees.from_state_dict(state)
    if method == "random-forest":
        return TreeForest.from_state_dict(state)
    raise ValueError(f"unknown forest method {method!r}; choose one of {', '.join(FOREST_METHODS)}")
