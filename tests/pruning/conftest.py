"""Tiny labelled tasks built in code, and a tiny classifier saved to a folder (no network)."""

from __future__ import annotations

import random

import pytest

from attnpatterns.data.records import TextExample
from attnpatterns.tasks.task import Task
from tests.helpers import save_tiny_model

GOOD = ["good", "great", "lovely", "fine", "bright"]
BAD = ["bad", "awful", "dull", "poor", "grim"]
FILLER = ["the", "film", "was", "a", "story", "and", "plot", "quite", "really", "scene"]


def make_task(n_train: int = 48, n_dev: int = 24, seed: int = 0, name: str = "toy") -> Task:
    """Sentiment by keyword: a tiny model learns it in a few steps, yet it is not solved at initialisation."""
    rng = random.Random(seed)

    def example(i: int) -> TextExample:
        label = i % 2
        words = rng.sample(FILLER, 4) + [rng.choice(GOOD if label else BAD)]
        rng.shuffle(words)
        return TextExample(str(i), " ".join(words), None, label)

    train = tuple(example(i) for i in range(n_train))
    dev = tuple(example(n_train + i) for i in range(n_dev))
    return Task(name, train, dev, 2, "accuracy", ("neg", "pos"), "files", {"name": name})


@pytest.fixture
def toy_task() -> Task:
    return make_task()


@pytest.fixture
def tiny_classifier_path(tmp_path):
    return save_tiny_model(tmp_path / "tiny-cls", classification=True)


@pytest.fixture
def tiny_encoder_path(tmp_path):
    return save_tiny_model(tmp_path / "tiny-enc")
