"""Two-pass agreement: Cohen's kappa and confusion on a hand-computed case; open disagreements."""

from __future__ import annotations

import pytest

from attnpatterns.annotation.agreement import label_counts, pass_agreement, pass_pairs
from attnpatterns.annotation.corpus import LabelRow, RETRACTED
from attnpatterns.constants import PATTERN_TYPES

FIRST = ["v", "v", "v", "d", "d", "b", "h", "h", "vd", "v"]
SECOND = ["v", "v", "d", "d", "d", "b", "h", "b", "vd", "v"]
FULL = {"v": "vertical", "d": "diagonal", "b": "block", "h": "heterogeneous", "vd": "vertical+diagonal"}


def _rows():
    rows = [LabelRow(f"m{i}", FULL[lab], "alice", "t", "first") for i, lab in enumerate(FIRST)]
    rows += [LabelRow(f"m{i}", FULL[lab], "bob", "t", "second") for i, lab in enumerate(SECOND)]
    return rows


INDEX = [{"map_id": f"m{i}", "kind": "raw" if i < 6 else "normed"} for i in range(10)]


def test_kappa_on_a_constructed_case():
    result = pass_agreement(_rows(), INDEX)
    a = result["all"]
    po = 0.8
    pe = (4 * 3 + 2 * 3 + 1 * 2 + 2 * 1 + 1 * 1) / 100  # marginals of first x second, per type
    assert a.n == 10 and a.observed == pytest.approx(po)
    assert a.kappa == pytest.approx((po - pe) / (1 - pe))
    v, d, b, h = (PATTERN_TYPES.index(t) for t in ("vertical", "diagonal", "block", "heterogeneous"))
    assert a.confusion[v][d] == 1 and a.confusion[h][b] == 1 and a.confusion[v][v] == 3
    assert sum(map(sum, a.confusion)) == 10
    assert result["raw"].n == 6 and result["normed"].n == 4
    assert a.open_disagreements == 2
    assert "| first \\ second |" in a.confusion_markdown()
    # second pass scored against the first: per-type F1 by hand (v 3/4 vs 3/3; d 2/2 vs 2/3; b 1/1 vs 1/2; h 1/2 vs
    # 1/1; vd 1/1)
    f1 = [2 * 3 / (4 + 3), 2 * 2 / (2 + 3), 2 * 1 / (1 + 2), 2 * 1 / (2 + 1), 1.0]
    assert a.macro_f1 == pytest.approx(sum(f1) / 5)


def test_adjudication_settles_but_does_not_change_kappa():
    rows = _rows() + [LabelRow("m2", "vertical", "carol", "t", "adjudicated")]
    a = pass_agreement(rows, INDEX)["all"]
    assert a.open_disagreements == 1 and a.n == 10 and a.observed == pytest.approx(0.8)


def test_retracted_second_label_is_not_a_pair():
    rows = _rows() + [LabelRow("m0", RETRACTED, "bob", "t", "second")]
    assert "m0" not in pass_pairs(rows) and len(pass_pairs(rows)) == 9


def test_single_label_and_empty_cases():
    rows = [LabelRow("m0", "vertical", "a", "t", "first"), LabelRow("m0", "vertical", "b", "t", "second")]
    assert pass_agreement(rows, INDEX)["all"].kappa == 1.0
    assert pass_agreement([], INDEX)["all"].kappa is None


def test_label_counts():
    counts = label_counts(_rows(), INDEX)
    assert counts["raw"]["vertical"] == 3 and counts["raw"]["total"] == 6 and counts["normed"]["unlabelled"] == 0
