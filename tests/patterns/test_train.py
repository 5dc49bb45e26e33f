"""Training on a tiny synthetic set: grouped stratified CV, early stopping, determinism, and refused data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.patterns.io import DataError, LabeledSet
from attnpatterns.patterns.model import ModelConfig, PatternCNN, PatternEnsemble, count_parameters
from attnpatterns.patterns.preprocess import DEFAULT_PREPROCESS, PreprocessConfig, default_preprocess, preprocess_maps
from attnpatterns.patterns.train import (
    TrainConfig,
    _class_weights,
    MAX_CLASS_WEIGHT,
    RareClassWarning,
    _grouped_splits,
    augmented_views,
    check_trainable,
    fit_features,
    train_classifier,
)
from tests.patterns.conftest import FAST, SMALL
from tests.patterns.synthetic import synthetic_set


def test_synthetic_patterns_are_learned(raw_result, raw_set):
    cv = raw_result.cv
    assert cv.report.macro_f1 >= 0.8
    assert len(cv.fold_macro_f1) == FAST.n_folds
    assert (cv.folds >= 0).all()
    robustness = cv.report.extra["robustness"]  # measured on each fold's test maps
    assert robustness["pad-128"] == 1.0 and robustness["pad-double"] == 1.0
    assert robustness["all"] >= 0.8
    assert np.allclose(cv.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # early stopping kept the best epoch and stopped within the budget
    assert len(raw_result.history) == raw_result.classifier.network.config.members
    for history in raw_result.history:
        assert 1 <= history.best_epoch <= len(history.val_loss) <= FAST.max_epochs
        assert history.val_loss[history.best_epoch - 1] <= min(history.val_loss) + 1e-4
    fresh = synthetic_set(n_per_type=6, kind="raw", seed=99, min_tokens=5, max_tokens=60)
    predicted = raw_result.classifier.predict(fresh.arrays, kind="raw")
    assert np.mean([p == t for p, t in zip(predicted, fresh.labels)]) >= 0.8


def test_normed_patterns_are_learned(normed_classifier):
    fresh = synthetic_set(n_per_type=6, kind="normed", seed=98, min_tokens=5, max_tokens=60)
    predicted = normed_classifier.predict(fresh.arrays, kind="normed")
    assert np.mean([p == t for p, t in zip(predicted, fresh.labels)]) >= 0.8


def test_splits_are_grouped_and_stratified(raw_set):
    for train, test in _grouped_splits(raw_set.y, raw_set.groups, 3, seed=0):
        assert not {raw_set.groups[i] for i in train} & {raw_set.groups[i] for i in test}
        assert set(raw_set.y[test]) == set(range(len(PATTERN_TYPES)))


def test_same_seed_same_model(raw_set):
    config = TrainConfig(n_folds=2, max_epochs=3, patience=3, seed=5)
    a = train_classifier(raw_set, model=SMALL, config=config, cross_validate=False).classifier
    b = train_classifier(raw_set, model=SMALL, config=config, cross_validate=False).classifier
    probe = raw_set.arrays[:10]
    assert np.allclose(a.predict_proba(probe), b.predict_proba(probe))


def test_class_weights_balance_the_classes():
    y = np.array([0] * 8 + [1] * 2 + [2] * 2 + [3] * 2 + [4] * 2)
    w = _class_weights(y, "balanced").numpy()
    assert w[1] == pytest.approx(4 * w[0])
    assert _class_weights(y, "sqrt").numpy()[1] == pytest.approx(2 * _class_weights(y, "sqrt").numpy()[0])
    assert np.allclose(_class_weights(y, "none").numpy(), 1.0)
    rare = np.array([0] * 200 + [1])
    assert _class_weights(rare, "balanced").numpy()[1] == pytest.approx(MAX_CLASS_WEIGHT)


def _without(data: LabeledSet, label: str) -> LabeledSet:
    return data.subset([i for i, lab in enumerate(data.labels) if lab != label])


def test_an_empty_class_is_refused(raw_set):
    data = _without(raw_set, "block")
    with pytest.raises(DataError, match="no training maps of type.*block.*--allow-empty-classes"):
        train_classifier(data, config=FAST)
    check_trainable(data, 3, allow_empty_classes=True)


def test_too_few_maps_of_a_type_for_the_folds_is_a_warning(raw_set):
    keep = [i for i, lab in enumerate(raw_set.labels) if lab != "diagonal"] + [
        i for i, lab in enumerate(raw_set.labels) if lab == "diagonal"
    ][:2]
    with pytest.warns(RareClassWarning, match="'diagonal': 1.*fewer source texts than the 3 splits"):
        result = train_classifier(
            raw_set.subset(keep), model=SMALL, config=TrainConfig(n_folds=3, max_epochs=2, augment=0)
        )
    assert result.cv.report.per_class["diagonal"]["support"] == 2


def test_kind_must_be_known_and_consistent(raw_set):
    unknown = LabeledSet(raw_set.names, raw_set.arrays, raw_set.labels, raw_set.groups, None)
    with pytest.raises(DataError, match="kind"):
        train_classifier(unknown, config=FAST)
    with pytest.raises(DataError, match="raw maps but a normed"):
        train_classifier(raw_set, kind="normed", config=FAST)


def test_each_kind_trains_with_its_default_grid(raw_set, normed_set):
    from dataclasses import replace

    quick = replace(FAST, max_epochs=1, min_epochs=0, augment=0)
    for data in (raw_set, normed_set):
        classifier = train_classifier(data, model=ModelConfig(members=1), config=quick, cross_validate=False).classifier
        # the kind's default, less the segment statistics: these synthetic maps carry no segment ids
        assert classifier.preprocess == replace(default_preprocess(data.kind), segment_statistics=False)
        assert classifier.preprocess.grid == DEFAULT_PREPROCESS[data.kind].grid
        assert classifier.features(data.arrays[:2]).images.shape[-1] == DEFAULT_PREPROCESS[data.kind].grid
    chosen = train_classifier(raw_set, preprocess=PreprocessConfig(grid=16), model=ModelConfig(members=1),
                              config=quick, cross_validate=False).classifier
    assert chosen.preprocess.grid == 16
    assert default_preprocess("layer-mean") == PreprocessConfig()  # a kind without an entry: the plain defaults


def test_model_is_small():
    pre = PreprocessConfig()
    member = count_parameters(PatternCNN(ModelConfig(), pre.n_channels, pre.n_vector))
    assert 10_000 <= member <= 40_000
    ensemble = PatternEnsemble(ModelConfig(), pre.n_channels, pre.n_vector)
    assert count_parameters(ensemble) == ModelConfig().members * member


def test_ensemble_averages_member_probabilities():
    pre = PreprocessConfig(grid=16)
    ensemble = PatternEnsemble(ModelConfig(members=3), pre.n_channels, pre.n_vector).eval()
    images, vectors = torch.rand(4, pre.n_channels, 16, 16), torch.rand(4, pre.n_vector)
    mean = torch.stack([torch.softmax(m(images, vectors), dim=1) for m in ensemble.members]).mean(0)
    assert torch.allclose(torch.softmax(ensemble(images, vectors), dim=1), mean, atol=1e-6)


def test_augmented_views_are_resized_copies(raw_set):
    views = augmented_views(raw_set, PreprocessConfig(), copies=2, seed=0)
    assert len(views) == 2 and all(len(v) == len(raw_set) for v in views)
    again = augmented_views(raw_set, PreprocessConfig(), copies=2, seed=0)
    assert torch.equal(views[0].images, again[0].images)  # drawn from the seed
    assert not torch.equal(views[0].images, views[1].images)


def test_forest_augmented_fits_the_trees_on_the_resized_copies_too(raw_set):
    """``forest_augmented`` decides whether the tree model also sees the resized views; checked against
    scikit-learn's boosting fitted here on the rows it should have seen."""
    from dataclasses import replace

    from sklearn.ensemble import HistGradientBoostingClassifier

    pre = PreprocessConfig()
    feats = preprocess_maps(raw_set.arrays, pre, names=raw_set.names)
    views = augmented_views(raw_set, pre, copies=1, seed=3)
    y = np.asarray(raw_set.y)
    config = replace(FAST, max_epochs=1, patience=1)
    probs = {}
    for augmented in (False, True):
        model = ModelConfig(members=1, forest_method="gradient-boosting", boost_iterations=10,
                            boost_learning_rate=0.2, forest_augmented=augmented)
        classifier, _ = fit_features(feats, y, raw_set.groups, "raw", pre, model, config, seed=5, augmented=views)
        rows = np.concatenate([feats.vectors.numpy(), views[0].vectors.numpy()]) if augmented else feats.vectors.numpy()
        labels = np.tile(y, 2) if augmented else y
        reference = HistGradientBoostingClassifier(max_iter=10, learning_rate=0.2, class_weight="balanced",
                                                   early_stopping=False, random_state=5)
        reference.fit(rows.astype(np.float32), labels)
        expected = np.zeros((len(y), len(PATTERN_TYPES)))
        expected[:, reference.classes_] = reference.predict_proba(feats.vectors.numpy().astype(np.float32))
        probs[augmented] = classifier.forest.predict_proba(feats.vectors)
        np.testing.assert_allclose(probs[augmented], expected, atol=1e-5)
    assert not np.allclose(probs[False], probs[True])  # the copies changed the trees


def test_repeated_cross_validation_reports_every_run(raw_set):
    from dataclasses import replace

    config = replace(FAST, max_epochs=3, patience=3, robustness=False)
    once = train_classifier(raw_set, model=SMALL, config=config).cv
    twice = train_classifier(raw_set, model=SMALL, config=replace(config, cv_repeats=2)).cv
    repeats = twice.report.extra["repeat_macro_f1"]
    assert len(repeats) == 2 and twice.report.extra["repeat_seeds"] == [config.seed, config.seed + 7]
    # the first run is the single cross-validation, unchanged; the second used other splits
    assert repeats[0] == pytest.approx(once.report.macro_f1)
    assert np.allclose(twice.probabilities, once.probabilities)
    assert "repeat_macro_f1" not in once.report.extra
    assert "repeated with other fold splits" in twice.report.to_text()
    with pytest.raises(ValueError, match="cv_repeats"):
        TrainConfig(cv_repeats=0)
