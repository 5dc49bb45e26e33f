"""Evaluation reports: scikit-learn metrics over all five types, text and files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from attnpatterns.patterns.evaluate import (
    CONFUSION_PNG,
    REPORT_JSON,
    EvaluationReport,
    evaluate_classifier,
    report_from_labels,
)
from attnpatterns.patterns.classifier import KindMismatchError


def test_metrics_match_scikit_learn():
    y_true = np.array([0, 0, 1, 1, 2, 3, 3, 4])
    y_pred = np.array([0, 1, 1, 1, 2, 3, 4, 4])
    report = EvaluationReport(y_true, y_pred)
    assert report.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert report.per_class["diagonal"]["precision"] == pytest.approx(2 / 3)
    assert report.confusion.sum() == 8 and report.confusion[0, 1] == 1


def test_macro_over_well_supported_types():
    y_true = np.array([0] * 10 + [1] * 10 + [2] * 2)
    y_pred = np.array([0] * 10 + [1] * 10 + [0] * 2)
    report = EvaluationReport(y_true, y_pred)
    assert report.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert report.macro_f1_over(10) == pytest.approx(f1_score(y_true, y_pred, labels=[0, 1], average="macro"))
    assert report.macro_f1_over(11) is None
    assert "at least 10 maps" in report.to_text()
    assert "at least" not in EvaluationReport(y_true[:20], y_pred[:20]).to_text()


def test_macro_average_is_over_types_present():
    report = report_from_labels(["vertical", "diagonal"], ["vertical", "diagonal"])
    assert report.macro_f1 == 1.0
    assert report.per_class["block"]["support"] == 0


def test_text_json_and_png(tmp_path):
    report = report_from_labels(["vertical", "block", "block"], ["vertical", "block", "heterogeneous"], "demo")
    text = report.to_text()
    assert "macro-F1" in text and "vertical+diagonal" in text and "confusion" in text
    paths = report.save(tmp_path)
    assert (tmp_path / CONFUSION_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / REPORT_JSON).read_text())
    assert data["macro_f1"] == pytest.approx(report.macro_f1)
    assert EvaluationReport.from_dict(data).macro_f1 == pytest.approx(report.macro_f1)
    assert set(paths) == {"json", "text", "confusion"}


def test_evaluate_classifier(raw_classifier, raw_set, normed_set):
    report = evaluate_classifier(raw_classifier, raw_set)
    assert report.y_true.size == len(raw_set) and report.macro_f1 > 0.8
    with pytest.raises(KindMismatchError):
        evaluate_classifier(raw_classifier, normed_set)


def _from_confusion(counts):
    """y_true, y_pred with ``counts[i][j]`` maps of true type i predicted as j."""
    y_true = [i for i, row in enumerate(counts) for j, c in enumerate(row) for _ in range(c)]
    y_pred = [j for i, row in enumerate(counts) for j, c in enumerate(row) for _ in range(c)]
    return np.array(y_true), np.array(y_pred)


def test_kappa_matches_the_formula_by_hand():
    # Made-up confusion over the five types (rows = true, columns = predicted); block has no maps at all.
    counts = [
        [20, 2, 1, 0, 0],
        [3, 15, 2, 0, 0],
        [0, 1, 6, 0, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 8],
    ]
    n = sum(map(sum, counts))
    observed = sum(counts[i][i] for i in range(5)) / n
    rows = [sum(r) for r in counts]
    cols = [sum(r[j] for r in counts) for j in range(5)]
    expected = sum(rows[i] * cols[i] for i in range(5)) / n**2
    by_hand = (observed - expected) / (1 - expected)
    # n = 60, observed 49/60, expected 1065/3600: kappa = 1875/2535 = 125/169
    assert by_hand == pytest.approx(125 / 169)
    report = EvaluationReport(*_from_confusion(counts))
    assert report.confusion.tolist() == counts
    assert report.kappa == pytest.approx(by_hand)
    assert f"Cohen's kappa {by_hand:.3f}" in report.to_text()
    data = report.to_dict()
    assert data["cohen_kappa"] == pytest.approx(by_hand)
    assert "cohen_kappa" not in EvaluationReport.from_dict(data).extra


def test_kappa_edge_cases():
    assert report_from_labels(["block"] * 3, ["block"] * 3).kappa == 1.0  # one type only: 0/0, perfect agreement
    assert report_from_labels(["vertical", "diagonal"], ["diagonal", "vertical"]).kappa == pytest.approx(-1.0)
    chance = report_from_labels(["vertical", "vertical", "diagonal", "diagonal"],
                                ["vertical", "diagonal", "vertical", "diagonal"])
    assert chance.kappa == pytest.approx(0.0)
