"""The random-forest part of the classifier: same answers as scikit-learn, stored as tensors, mixed with the CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.ensemble import RandomForestClassifier

from attnpatterns.patterns.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from attnpatterns.patterns.forest import STATE_PREFIX, TreeForest
from attnpatterns.patterns.model import ModelConfig


def _data(seed: int = 0, n: int = 300, classes=(0, 1, 3, 4)):
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=n)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[:, 0] += y  # learnable
    x[:, 1] = np.round(x[:, 1], 1)  # ties at thresholds
    return x, y


def test_forest_arrays_give_scikit_learns_probabilities():
    x, y = _data()  # class 2 never occurs: its column must stay 0
    sk = RandomForestClassifier(25, min_samples_leaf=2, class_weight="balanced_subsample", random_state=0).fit(x, y)
    forest = TreeForest.from_sklearn(sk)
    test, _ = _data(seed=1, n=200)
    ours = forest.predict_proba(test, batch_size=64)
    theirs = sk.predict_proba(test)
    assert ours.shape == (200, 5) and np.allclose(ours[:, 2], 0)
    np.testing.assert_allclose(ours[:, [0, 1, 3, 4]], theirs, atol=1e-6)
    assert forest.n_trees == 25 and forest.n_nodes == sum(e.tree_.node_count for e in sk.estimators_)


def test_fit_and_state_round_trip():
    x, y = _data(seed=2)
    forest = TreeForest.fit(x, y, n_trees=10, seed=3)
    again = TreeForest.fit(x, y, n_trees=10, seed=3)
    np.testing.assert_array_equal(forest.predict_proba(x), again.predict_proba(x))  # seeded
    state = forest.state_dict()
    assert all(k.startswith(STATE_PREFIX) for k in state)
    np.testing.assert_array_equal(TreeForest.from_state_dict(state).predict_proba(x), forest.predict_proba(x))
    with pytest.raises(ValueError, match="missing"):
        TreeForest.from_state_dict({k: v for k, v in state.items() if not k.endswith("threshold")})
    broken = dict(state)
    broken[STATE_PREFIX + "left"] = state[STATE_PREFIX + "left"].clone()
    broken[STATE_PREFIX + "left"][0] = forest.n_nodes + 5
    with pytest.raises(ValueError, match="inconsistent"):
        TreeForest.from_state_dict(broken)


def test_classifier_mixes_the_forest_and_the_network(raw_classifier, raw_set, raw_result):
    feats = raw_classifier.features(raw_set.arrays)
    members = raw_classifier.predict_members(feats)
    assert set(members) == {"cnn", "forest"}
    w = raw_classifier.forest_weight
    assert w == ModelConfig().forest_weight > 0
    np.testing.assert_allclose(
        raw_classifier.predict_features(feats), (1 - w) * members["cnn"] + w * members["forest"], atol=1e-6
    )
    parts = raw_result.cv.report.extra["member_macro_f1"]
    assert set(parts) == {"cnn", "forest"} and "each part alone" in raw_result.cv.report.to_text()


def test_checkpoint_without_its_forest_is_refused(tmp_path, raw_classifier):
    folder = save_checkpoint(raw_classifier, tmp_path / "ckpt")
    state = load_file(str(folder / WEIGHTS_FILE))
    save_file({k: v for k, v in state.items() if not k.startswith(STATE_PREFIX)}, str(folder / WEIGHTS_FILE))
    config = json.loads((folder / CONFIG_FILE).read_text())
    config.pop("weights_sha256")
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="forest tensors .* missing"):
        load_checkpoint(folder)


def test_configs_from_before_the_forest_mean_the_network_alone():
    old = ModelConfig.from_dict({"channels": [8, 16, 24, 32], "members": 3})
    assert old.forest_weight == 0.0
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()
    with pytest.raises(ValueError, match="forest_weight"):
        ModelConfig(forest_weight=1.0)


# -- gradient boosting ----------------------------------------------------------------------------------------------

def _brute_force_boosting(sk, x: np.ndarray, n_classes: int = 5) -> np.ndarray:
    """Written apart from BoostedTrees: walk every predictor's node records row by row, sum the leaf values per
    scored class on top of the baseline, softmax (two classes: one tree per iteration for the second class)."""
    classes = list(sk.classes_)
    scored = classes[1:] if sk.n_trees_per_iteration_ == 1 else classes
    out = np.zeros((len(x), n_classes))
    for r, row in enumerate(np.asarray(x, dtype=np.float64)):
        raw = dict.fromkeys(classes, 0.0)
        for k, c in enumerate(scored):
            raw[c] = float(np.asarray(sk._baseline_prediction).reshape(-1)[k])
        for predictors in sk._predictors:
            for k, predictor in enumerate(predictors):
                nodes, i = predictor.nodes, 0
                while not nodes[i]["is_leaf"]:
                    node = nodes[i]
                    i = node["left"] if row[node["feature_idx"]] <= node["num_threshold"] else node["right"]
                raw[scored[k]] += float(nodes[i]["value"])
        top = max(raw.values())
        z = sum(np.exp(v - top) for v in raw.values())
        for c, v in raw.items():
            out[r, c] = np.exp(v - top) / z
    return out


@pytest.mark.parametrize("classes", [(0, 1, 3, 4), (1, 3)])
def test_boosted_arrays_give_scikit_learns_probabilities(classes):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from attnpatterns.patterns.forest import BoostedTrees

    x, y = _data(classes=classes)
    sk = HistGradientBoostingClassifier(max_iter=15, learning_rate=0.2, class_weight="balanced",
                                        early_stopping=False, random_state=0).fit(x, y)
    boosted = BoostedTrees.from_sklearn(sk)
    test, _ = _data(seed=1, n=120)
    ours = boosted.predict_proba(test, batch_size=50)
    absent = [c for c in range(5) if c not in classes]
    assert ours.shape == (120, 5) and np.all(ours[:, absent] == 0)
    np.testing.assert_allclose(ours[:, list(classes)], sk.predict_proba(test), atol=1e-6)
    np.testing.assert_allclose(ours, _brute_force_boosting(sk, test), atol=1e-6)
    per_iteration = 1 if len(classes) == 2 else len(classes)
    assert boosted.n_trees == 15 * per_iteration


def test_boosted_fit_state_round_trip_and_one_class():
    from attnpatterns.patterns.forest import BoostedTrees, trees_from_state_dict

    x, y = _data(seed=2)
    boosted = BoostedTrees.fit(x, y, iterations=10, seed=3)
    refit = BoostedTrees.fit(x, y, iterations=10, seed=3)
    np.testing.assert_array_equal(boosted.predict_proba(x), refit.predict_proba(x))  # seeded
    state = boosted.state_dict()
    assert all(k.startswith(STATE_PREFIX) for k in state)
    again = trees_from_state_dict("gradient-boosting", state)
    np.testing.assert_array_equal(again.predict_proba(x), boosted.predict_proba(x))
    with pytest.raises(ValueError, match="missing"):  # a random forest's tensors are not a boosted model's
        trees_from_state_dict("gradient-boosting", TreeForest.fit(x, y, n_trees=3).state_dict())
    broken = dict(state)
    broken[STATE_PREFIX + "tree_class"] = state[STATE_PREFIX + "tree_class"].clone()
    broken[STATE_PREFIX + "tree_class"][0] = 9
    with pytest.raises(ValueError, match="inconsistent"):
        trees_from_state_dict("gradient-boosting", broken)
    single = BoostedTrees.fit(x[:5], np.full(5, 3), iterations=10)  # one class: nothing to boost
    np.testing.assert_array_equal(single.predict_proba(x[:4]), np.tile(np.eye(5)[3], (4, 1)))


def test_classifier_with_gradient_boosting_saves_and_loads(tmp_path, raw_set):
    from attnpatterns.patterns.forest import BoostedTrees
    from attnpatterns.patterns.train import train_classifier
    from tests.patterns.conftest import FAST, GRID32

    model = ModelConfig(members=1, forest_method="gradient-boosting", boost_iterations=20)
    classifier = train_classifier(raw_set, preprocess=GRID32, model=model, config=FAST,
                                  cross_validate=False).classifier
    assert isinstance(classifier.forest, BoostedTrees)
    folder = save_checkpoint(classifier, tmp_path / "ckpt")
    loaded = load_checkpoint(folder)
    assert loaded.network.config.forest_method == "gradient-boosting" and isinstance(loaded.forest, BoostedTrees)
    feats = classifier.features(raw_set.arrays)
    np.testing.assert_allclose(loaded.predict_features(feats), classifier.predict_features(feats), atol=1e-6)


def test_configs_from_before_the_tree_choice_mean_a_random_forest():
    data = ModelConfig().to_dict()
    data.pop("forest_method")
    assert ModelConfig.from_dict(data).forest_method == "random-forest"
    with pytest.raises(ValueError, match="forest_method"):
        ModelConfig(forest_method="boosting")
