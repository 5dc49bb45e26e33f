"""Fixtures for the classifier tests: fast training settings, small trained classifiers, isolated defaults."""

from __future__ import annotations

import numpy as np
import pytest

from attnpatterns.patterns import checkpoint as checkpoint_module
from attnpatterns.patterns.model import ModelConfig
from attnpatterns.patterns.preprocess import PreprocessConfig
from attnpatterns.patterns.train import TrainConfig, train_classifier
from tests.patterns.synthetic import synthetic_set

#: Small and quick: enough for the synthetic patterns, a few seconds per fit on one core.
FAST = TrainConfig(n_folds=3, max_epochs=25, patience=6, batch_size=16, lr=5e-3, augment=1)
#: Two members, so that the ensemble code runs, at two thirds of the default cost.
SMALL = ModelConfig(members=2)
#: A 32 x 32 grid whatever the kind's default (raw: 64), so that the shared classifiers stay quick to train.
GRID32 = PreprocessConfig(grid=32)


@pytest.fixture(scope="session")
def raw_set():
    return synthetic_set(n_per_type=12, kind="raw", seed=3, min_tokens=5, max_tokens=30)


@pytest.fixture(scope="session")
def normed_set():
    return synthetic_set(n_per_type=12, kind="normed", seed=4, min_tokens=5, max_tokens=30)


@pytest.fixture(scope="session")
def raw_result(raw_set):
    return train_classifier(raw_set, preprocess=GRID32, model=SMALL, config=FAST)


@pytest.fixture(scope="session")
def raw_classifier(raw_result):
    return raw_result.classifier


@pytest.fixture(scope="session")
def normed_classifier(normed_set):
    return train_classifier(normed_set, preprocess=GRID32, model=SMALL, config=FAST, cross_validate=False).classifier


@pytest.fixture
def default_dir(tmp_path, monkeypatch):
    """Point the shipped-default location at an empty temporary folder (tests never touch the real one)."""
    folder = tmp_path / "default-checkpoints"
    monkeypatch.setattr(checkpoint_module, "DEFAULT_CHECKPOINT_DIR", folder)
    return folder


def save_npy_folder(folder, data, padded_to: int | None = None):
    """Write a LabeledSet's maps as ``<name>.npy`` (optionally zero-padded like the original data)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(data.names, data.arrays):
        if padded_to is not None:
            out = np.zeros((padded_to, padded_to), dtype=np.float32)
            out[: arr.shape[0], : arr.shape[1]] = arr
            arr = out
        np.save(folder / f"{name}.npy", arr)
    return folder
