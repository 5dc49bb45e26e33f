"""Column measurements of GUIDELINE.md section 8 (special-token columns, the dominant column); the rule tables."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from attnpatterns.annotation.columns import (
    column_coverage,
    dominant_column,
    lone_column_agreement,
    rule_agreement,
    special_columns,
    stripe_agreement,
    strongest_column,
)
from attnpatterns.annotation.corpus import add_maps, append_labels
from tests.annotation.conftest import make_map
from tests.annotation.test_cli import invoke

TOKENS = ["[CLS]", "a", "b", "c", "d", "e", "f", "[SEP]"]


def column_map(lit_rows: int, teal_rows: int, n: int = 8) -> np.ndarray:
    """A diagonal map (max 1) whose [CLS] column is 0.5 in ``teal_rows`` content rows, 0.15 (visible, not lit) in
    the next ``lit_rows - teal_rows`` and 0 elsewhere."""
    a = np.eye(n, dtype=np.float32)
    content = range(1, n - 1)
    for k, row in enumerate(content):
        a[row, 0] = 0.5 if k < teal_rows else (0.15 if k < lit_rows else 0.0)
    return a


def test_coverage_counts_content_rows_only():
    a = column_map(lit_rows=4, teal_rows=2)
    a[0, 0] = a[7, 0] = 1.0  # the [CLS] and [SEP] rows never count
    cls, sep = column_coverage(a, TOKENS)
    assert (cls.index, cls.token, cls.n_rows) == (0, "[CLS]", 6)
    assert cls.visible == pytest.approx(4 / 6) and cls.lit == pytest.approx(2 / 6)
    assert cls.shares == pytest.approx((4 / 6, 2 / 6, 2 / 6, 2 / 6)) and cls.share(0.2) == cls.lit
    with pytest.raises(ValueError, match="level"):
        cls.share(0.25)
    assert sep.index == 7 and sep.visible == 0.0
    # scale-free: colours are per map, so multiplying the map changes nothing
    assert column_coverage(a * 40, TOKENS) == column_coverage(a, TOKENS)
    assert special_columns(["<s>", "x", "</s>"]) == [0, 2] and special_columns(["x", "y"]) == [0]


def test_strongest_column_and_rule():
    assert strongest_column(column_map(6, 3), TOKENS).index == 0
    assert strongest_column(column_map(6, 3), TOKENS).meets(0.6, 1 / 3)
    assert not strongest_column(column_map(6, 1), TOKENS).meets(0.6, 1 / 3)  # too little teal
    assert not strongest_column(column_map(2, 2), TOKENS).meets(0.6, 1 / 3)  # too few rows


def test_rule_agreement_scores_the_labels():
    maps = [SimpleNamespace(array=column_map(6, 3), tokens=TOKENS, label="vertical+diagonal"),
            SimpleNamespace(array=column_map(6, 2), tokens=TOKENS, label="vertical+diagonal"),
            SimpleNamespace(array=column_map(1, 0), tokens=TOKENS, label="diagonal"),
            SimpleNamespace(array=column_map(6, 0), tokens=TOKENS, label="diagonal"),  # even dim blue
            SimpleNamespace(array=column_map(6, 6), tokens=TOKENS, label="vertical")]  # not scored
    scores = {s.thresholds: s for s in rule_agreement(maps, (0.6,), (1 / 3, 0.5))}
    third, half = scores[(0.6, 1 / 3)], scores[(0.6, 0.5)]
    assert (third.n_positive, third.n_negative) == (2, 2)
    assert third.agreement == 1.0 and third.positive_called == 1.0 and third.negative_kept == 1.0
    assert half.positive_called == 0.5 and half.agreement == 0.75
    with pytest.raises(ValueError, match="no vertical"):
        rule_agreement(maps[-1:])


def test_stripe_rule_counts_pairs_only():
    pair = dict(tokens=TOKENS, text_kind="pair")
    maps = [SimpleNamespace(array=column_map(6, 6), label="vertical", **pair),  # indigo blue or brighter in 6/6 rows
            SimpleNamespace(array=column_map(2, 2), label="block", **pair),  # in 2/6
            SimpleNamespace(array=column_map(6, 3), label="block", **pair),  # in 3/6: called vertical at f = 0.5
            SimpleNamespace(array=column_map(6, 6), label="block", tokens=TOKENS, text_kind="single")]  # not scored
    half, two_thirds = stripe_agreement(maps, (0.5, 2 / 3))
    assert (half.n_positive, half.n_negative) == (1, 2)
    assert half.thresholds == (0.5,) and half.agreement == pytest.approx(2 / 3) and half.negative_kept == 0.5
    assert two_thirds.agreement == 1.0
    with pytest.raises(ValueError, match="sentence pairs"):
        stripe_agreement(maps[-1:])


def _dominant_by_hand(a: np.ndarray, tokens: list[str]) -> tuple[int, float, float]:
    """Brute force: loop over the content rows and columns, count where each column holds the row's maximum."""
    content = [r for r, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]") and r != 0]
    top = a.max()
    best = None
    for c in range(a.shape[1]):
        wins = sum(1 for r in content if all(a[r, c] >= a[r, k] for k in range(a.shape[1])))
        seen = sum(1 for r in content if a[r, c] / top >= 0.1)
        key = (wins / len(content), seen / len(content), -c)
        if best is None or key > best[0]:
            best = (key, c)
    (dominant, visible, _), c = best
    return c, dominant, visible


def test_dominant_column_against_a_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(5, 14))
        tokens = ["[CLS]", *[f"w{i}" for i in range(n - 2)], "[SEP]"]
        a = rng.random((n, n)) ** 3
        if trial % 2:
            a[:, int(rng.integers(0, n))] += rng.random() * 2  # a stripe of random strength over the texture
        if trial % 5 == 0:
            a = np.round(a, 1)  # ties between columns and within rows
        got = dominant_column(a, tokens)
        c, dominant, visible = _dominant_by_hand(a, tokens)
        assert (got.index, got.token) == (c, tokens[c])
        assert got.dominant == pytest.approx(dominant) and got.visible == pytest.approx(visible)
        assert got.n_rows == n - 2


def test_lone_column_rule_scores_vertical_against_heterogeneous():
    stripe = np.full((8, 8), 0.05)
    stripe[:, 3] = 1.0  # the brightest cell of every row
    partial = stripe.copy()
    partial[4:, 3] = 0.02  # brightest in 3 of 6 content rows, visible in 3 of 6
    texture = np.random.default_rng(0).random((8, 8))
    maps = [SimpleNamespace(array=stripe, tokens=TOKENS, label="vertical"),
            SimpleNamespace(array=partial, tokens=TOKENS, label="vertical"),
            SimpleNamespace(array=texture, tokens=TOKENS, label="heterogeneous"),
            SimpleNamespace(array=stripe, tokens=TOKENS, label="diagonal")]  # not scored
    scores = {s.thresholds: s for s in lone_column_agreement(maps, (0.5,), (0.5, 0.9))}
    half, most = scores[(0.5, 0.5)], scores[(0.5, 0.9)]
    assert (half.n_positive, half.n_negative) == (2, 1)
    c, dominant, _ = _dominant_by_hand(texture, TOKENS)
    assert half.negative_kept == (0.0 if dominant >= 0.5 else 1.0)
    assert half.positive_called == 1.0 and most.positive_called == 0.5
    with pytest.raises(ValueError, match="no vertical or heterogeneous"):
        lone_column_agreement(maps[-1:])


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="square"):
        column_coverage(np.ones((3, 4)), TOKENS[:3])
    with pytest.raises(ValueError, match="tokens"):
        column_coverage(np.ones((3, 3)), TOKENS)
    with pytest.raises(ValueError, match="non-negative"):
        column_coverage(-np.ones((3, 3)), TOKENS[:3])
    with pytest.raises(ValueError, match="outside"):
        column_coverage(np.ones((3, 3)), TOKENS[:3], columns=[5])


def test_columns_command(tmp_path):
    root = tmp_path / "corpus"
    maps = [make_map(pattern=p, text_id=f"s{i:03d}", seed=i)
            for i, p in enumerate(["vertical+diagonal", "diagonal", "vertical+diagonal", "diagonal"])]
    add_maps(root, maps)
    r = invoke("annotate", "columns", "--corpus", root)
    assert r.exit_code != 0 and "no vertical+diagonal or diagonal maps" in r.output  # nothing labelled yet
    append_labels(root, [{"map_id": m.map_id, "label": "vertical+diagonal" if i % 2 == 0 else "diagonal",
                          "annotator": "test", "method": "synthetic", "pass": "first"} for i, m in enumerate(maps)])
    r = invoke("annotate", "columns", "--corpus", root)
    assert r.exit_code == 0, r.output
    assert "(2 vertical+diagonal, 2 diagonal maps)" in r.output and "| 0.60 | 0.33 | 1.000 | 1.00 | 1.00 |" in r.output
    assert "no vertical/block table" in r.output  # the synthetic corpus has no pairs
    r = invoke("annotate", "columns", maps[0].map_id, "--corpus", root)
    assert r.exit_code == 0 and "[CLS]@0: 1.00 1.00 1.00 1.00" in r.output, r.output
    r = invoke("annotate", "columns", "nope", "--corpus", root)
    assert r.exit_code != 0 and "not in the corpus" in r.output
