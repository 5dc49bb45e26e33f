"""Tasks from files and metrics: correct values, and a clear error for every unusable input."""

from __future__ import annotations

import numpy as np
import pytest

from attnpatterns.data.records import InputError
from attnpatterns.tasks.metrics import MetricError, available_metrics, check_metric, compute_metrics
from attnpatterns.tasks.task import load_task


def _write(path, rows, header="sentence,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_metrics_values():
    logits = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    got = compute_metrics(logits, np.array([0, 1, 0, 0]), 2)
    assert got["accuracy"] == 0.75
    assert got["f1"] == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert got["mcc"] == pytest.approx(0.5773502691896258)
    reg = compute_metrics(np.array([[1.0], [2.0], [3.0], [5.0]]), np.array([1.0, 2.0, 3.0, 4.0]), 1)
    assert reg["spearman"] == pytest.approx(1.0) and 0.9 < reg["pearson"] < 1.0
    assert reg["corr"] == pytest.approx((reg["pearson"] + reg["spearman"]) / 2)
    constant = compute_metrics(np.zeros((3, 1)), np.array([1.0, 2.0, 3.0]), 1)
    assert constant["pearson"] == 0.0  # constant predictions: no correlation, not NaN


def test_metric_choice_is_checked():
    assert available_metrics(2) == ["accuracy", "f1", "mcc"]
    assert available_metrics(3) == ["accuracy", "mcc"]
    assert available_metrics(1) == ["pearson", "spearman", "corr"]
    with pytest.raises(MetricError, match="cannot be used for mnli.*accuracy, mcc"):
        check_metric("f1", 3, "mnli")
    with pytest.raises(MetricError, match="regression"):
        check_metric("mcc", 1)
    with pytest.raises(MetricError, match="unknown metric"):
        check_metric("bleu", 2)


def test_task_from_files(tmp_path):
    train = _write(tmp_path / "train.csv", ["a fine day,pos", "a grim day,neg", "so so,neutral"])
    dev = _write(tmp_path / "dev.csv", ["fine again,pos"])
    task = load_task(train_file=train, dev_file=dev)
    assert task.num_labels == 3 and task.label_names == ("neg", "neutral", "pos")
    assert [e.label for e in task.train] == [2, 0, 1] and task.metric == "accuracy"
    assert task.with_metric("mcc").metric == "mcc"
    again = load_task(**task.source)
    assert again.fingerprint() == task.fingerprint()


def test_regression_task_from_files(tmp_path):
    train = _write(tmp_path / "train.tsv", ["a\tb\t0.5", "c\td\t4.0"], header="sentence1\tsentence2\tscore")
    dev = _write(tmp_path / "dev.tsv", ["e\tf\t2.5"], header="sentence1\tsentence2\tscore")
    task = load_task(train_file=train, dev_file=dev, label_column="score", regression=True)
    assert task.is_regression and task.is_pair and task.metric == "corr" and task.dev[0].label == 2.5
    bad = _write(tmp_path / "bad.tsv", ["e\tf\thigh"], header="sentence1\tsentence2\tscore")
    with pytest.raises(InputError, match="not a number"):
        load_task(train_file=train, dev_file=bad, label_column="score", regression=True)


def test_task_file_without_labels(tmp_path):
    dev = _write(tmp_path / "dev.csv", ["fine,pos"])
    nolabel = tmp_path / "train.csv"
    nolabel.write_text("sentence\nfine\ngrim\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column 'label'"):
        load_task(train_file=nolabel, dev_file=dev)
    blank = _write(tmp_path / "blank.csv", ["fine,pos", "grim,"])
    with pytest.raises(InputError, match="no label in column 'label'"):
        load_task(train_file=blank, dev_file=dev)


def test_task_file_with_unknown_labels(tmp_path):
    train = _write(tmp_path / "train.csv", ["fine,pos", "grim,neg"])
    dev = _write(tmp_path / "dev.csv", ["fine,positive"])
    with pytest.raises(InputError, match="'positive'.*never occur"):
        load_task(train_file=train, dev_file=dev)
    one = _write(tmp_path / "one.csv", ["fine,pos", "good,pos"])
    with pytest.raises(InputError, match="only one label"):
        load_task(train_file=one, dev_file=dev)


def test_empty_dev_set(tmp_path):
    train = _write(tmp_path / "train.csv", ["fine,pos", "grim,neg"])
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        load_task(train_file=train, dev_file=dev)


def test_task_needs_a_name_or_files(tmp_path):
    with pytest.raises(InputError, match="name a task"):
        load_task()
    with pytest.raises(InputError, match="both --train-file and --dev-file"):
        load_task(train_file=tmp_path / "x.csv")
    with pytest.raises(InputError, match=r"unknown task .*built-in task \(reviews, entail\), a GLUE task"):
        load_task("no-such-task")
    with pytest.raises(MetricError, match="cannot be used"):
        train = _write(tmp_path / "train.csv", ["fine,pos", "grim,neg"])
        load_task(train_file=train, dev_file=train, metric="pearson")


def test_glue_tasks_from_the_classic_layout(tmp_path):
    sst = tmp_path / "glue" / "SST-2"
    sst.mkdir(parents=True)
    for split in ("train", "dev"):
        (sst / f"{split}.tsv").write_text("sentence\tlabel\na fine film\t1\na grim film\t0\n", encoding="utf-8")
    task = load_task("sst-2", glue_dir=tmp_path / "glue")
    assert (task.name, task.origin, task.num_labels, task.metric) == ("sst2", "glue", 2, "accuracy")
    assert [e.label for e in task.dev] == [1, 0] and load_task(**task.source).fingerprint() == task.fingerprint()
    cola = tmp_path / "glue" / "CoLA"
    cola.mkdir()
    for split in ("train", "dev"):
        (cola / f"{split}.tsv").write_text("src\t1\t\tThe cat sat.\nsrc\t0\t*\tCat the sat.\n", encoding="utf-8")
    assert load_task("cola", glue_dir=tmp_path / "glue").metric == "mcc"  # the paper's pruning metric for CoLA
    with pytest.raises(InputError, match="classic layout"):
        load_task("rte", glue_dir=tmp_path / "glue")


def test_builtin_tasks_load():
    from attnpatterns.tasks.task import task_choices

    assert {"reviews", "entail"} <= set(task_choices())
    reviews, entail = load_task("reviews"), load_task("entail")
    assert reviews.origin == "builtin" and not reviews.is_pair and entail.is_pair
    for task in (reviews, entail):
        assert len(task.train) >= 600 and len(task.dev) >= 200 and task.num_labels == 2
