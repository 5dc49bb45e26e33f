"""Builders for small synthetic corpus maps: one clear pattern per type, so tests never need a model."""

from __future__ import annotations

import numpy as np
import pytest

from attnpatterns.annotation.corpus import CorpusMap, add_maps, make_map_id


def pattern_array(pattern: str, n: int = 8, seed: int = 0) -> np.ndarray:
    """A row-stochastic (n, n) map that looks like ``pattern`` (one of PATTERN_TYPES)."""
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) * 0.05
    if pattern in ("vertical", "vertical+diagonal"):
        a[:, 0] += 1.0
    if pattern in ("diagonal", "vertical+diagonal"):
        a[np.arange(n), np.arange(n)] += 1.0
    if pattern == "block":
        h = n // 2
        a[:h, :h] += 0.5
        a[h:, h:] += 0.5
    if pattern == "heterogeneous":
        a += rng.random((n, n))
    return (a / a.sum(axis=1, keepdims=True)).astype(np.float32)


def make_map(**overrides) -> CorpusMap:
    kw = dict(model="bundled:all-MiniLM-L6-v2", text_id="s000", text_kind="single", layer=0, head=0, kind="raw",
              n=8, pattern="vertical", seed=0)
    kw.update(overrides)
    n = kw.pop("n")
    pattern, seed = kw.pop("pattern"), kw.pop("seed")
    tokens = kw.pop("tokens", None) or (["[CLS]"] + [f"w{i}" for i in range(1, n - 1)] + ["[SEP]"])
    segment_ids = kw.pop("segment_ids", None) or [0] * n
    map_id = kw.pop("map_id", None) or make_map_id("minilm", kw["layer"], kw["head"], kw["text_id"], kw["kind"])
    return CorpusMap(map_id=map_id, tokens=tokens, segment_ids=segment_ids, array=pattern_array(pattern, n, seed),
                     **kw)


@pytest.fixture
def corpus(tmp_path):
    """A corpus folder with 12 unlabelled maps: 6 raw and 6 normed over 2 layers x 3 heads."""
    root = tmp_path / "corpus"
    maps = [
        make_map(layer=layer, head=head, kind=kind, text_id=f"s{layer * 3 + head:03d}", seed=layer * 3 + head)
        for kind in ("raw", "normed") for layer in range(2) for head in range(3)
    ]
    add_maps(root, maps)
    return root


TEXTS = [
    "The committee postponed its decision until the spring.",
    "Rain fell on the old harbour all night.",
    "She packed three notebooks and a camera.",
    "Why did the bridge close?",
    "Old maps show a second pier that no longer exists.",
    "The recipe needs flour, eggs, and patience.",
]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Two real extraction runs of a tiny random BERT: single sentences and sentence pairs."""
    from attnpatterns.data.records import TextExample
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model
    from tests.helpers import save_tiny_model

    base = tmp_path_factory.mktemp("runs")
    model = load_model(save_tiny_model(base / "tiny"))
    singles = [TextExample(f"s{i}", t) for i, t in enumerate(TEXTS)]
    pairs = [TextExample(f"p{i}", t, TEXTS[(i + 1) % len(TEXTS)]) for i, t in enumerate(TEXTS)]
    extract_maps(model, singles, base / "singles", ExtractionConfig(batch_size=8))
    extract_maps(model, pairs, base / "pairs", ExtractionConfig(batch_size=8))
    return base / "singles", base / "pairs"
