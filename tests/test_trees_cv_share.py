"""benchmarks/trees_cv.py's learning-curve draw: whole texts, the share asked for, nothing from held-out rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location(
    "trees_cv", Path(__file__).resolve().parents[1] / "benchmarks" / "trees_cv.py"
)
trees_cv = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(trees_cv)  # a script, not a package: loaded from its file, sys.path left alone
train_share = trees_cv.train_share


def test_train_share_keeps_whole_texts_in_the_share_asked_for():
    rng = np.random.default_rng(3)
    groups = np.array([f"t{rng.integers(0, 40)}" for _ in range(500)])
    train = np.sort(rng.choice(500, 400, replace=False))
    for share in (0.25, 0.5, 0.75, 1.0):
        kept = train_share(train, groups, share, np.random.default_rng(0))
        texts = sorted({groups[i] for i in train})
        kept_texts = {groups[i] for i in kept}
        assert len(kept_texts) == round(share * len(texts))
        # every training row of a kept text, in order, and no row from outside ``train``
        assert kept.tolist() == [i for i in train.tolist() if groups[i] in kept_texts]
    assert len({groups[i] for i in train_share(train, groups, 0.001, np.random.default_rng(0))}) == 1
