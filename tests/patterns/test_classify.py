"""Classifying an extraction run built with the tiny model, and loose .npy folders; the table format."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from attnpatterns.constants import MANIFEST_FILE, PATTERN_TYPES
from attnpatterns.data.records import TextExample
from attnpatterns.extraction import ExtractionConfig, extract_maps, open_run
from attnpatterns.models import load_model
from attnpatterns.patterns.classifier import KindMismatchError
from attnpatterns.patterns.classify import (
    CLASSIFICATION_COLUMNS,
    CLASSIFICATIONS_FILE,
    HEAD_SUMMARY_COLUMNS,
    HEAD_SUMMARY_FILE,
    ClassificationTable,
    classify_maps,
    classify_run,
    head_summary,
    parse_map_name,
)
from attnpatterns.patterns.evaluate import evaluate_classifier
from attnpatterns.patterns.io import LabeledSet
from attnpatterns.patterns.robustness import TREATMENTS, Treatment, agreement_masks, resize_segments
from attnpatterns.patterns.train import augmented_views, train_classifier
from tests.helpers import save_tiny_model
from tests.patterns.conftest import FAST, GRID32, SMALL, save_npy_folder

TEXTS = ["A short one.", "Rain fell on the old harbour all night.", "Why did the bridge close?"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    model = load_model(save_tiny_model(tmp_path_factory.mktemp("tiny")))
    examples = [TextExample(f"s{i}", t) for i, t in enumerate(TEXTS)]
    examples.append(TextExample("p0", TEXTS[0], TEXTS[1]))
    mask = np.ones((2, 4))
    mask[1, 2] = 0  # a masked head has no maps: its original id must not shift the others
    return extract_maps(model, examples, tmp_path_factory.mktemp("run") / "run", ExtractionConfig(), head_mask=mask)


def test_classify_run_labels_every_map(tiny_run, raw_classifier, normed_classifier):
    table = classify_run(tiny_run, {"raw": raw_classifier, "normed": normed_classifier}, batch_size=5)
    n_heads = len(tiny_run.heads)
    assert n_heads == 7
    assert len(table) == len(tiny_run.examples) * n_heads * 2
    assert tuple(table.rows.columns) == CLASSIFICATION_COLUMNS
    assert set(table.rows["label"]) <= set(PATTERN_TYPES)
    probs = table.rows[[f"p_{t}" for t in PATTERN_TYPES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (1, 2) not in set(zip(table.rows["layer"], table.rows["head"]))
    assert (1, 3) in set(zip(table.rows["layer"], table.rows["head"]))
    # batching does not change the answer
    one = classify_run(tiny_run, {"raw": raw_classifier}, batch_size=1000)
    raw_rows = table.rows[table.rows["kind"] == "raw"].reset_index(drop=True)
    assert np.allclose(one.rows[list(CLASSIFICATION_COLUMNS[5:])].to_numpy(),
                       raw_rows[list(CLASSIFICATION_COLUMNS[5:])].to_numpy(), atol=1e-5)
    # a map classified alone gets the same label as in the run
    row = table.rows.iloc[3]
    alone = (raw_classifier if row["kind"] == "raw" else normed_classifier).predict(
        [tiny_run.get_map(row["example_id"], int(row["layer"]), int(row["head"]), row["kind"])]
    )
    assert alone[0] == row["label"]


def test_table_files_and_summary(tiny_run, raw_classifier, tmp_path):
    table = classify_run(tiny_run, raw_classifier)
    paths = table.save(tmp_path / "out", manifest_extra={"command": "test"})
    rows = pd.read_csv(paths["classifications"])
    assert tuple(rows.columns) == CLASSIFICATION_COLUMNS
    summary = pd.read_csv(tmp_path / "out" / HEAD_SUMMARY_FILE)
    assert tuple(summary.columns) == HEAD_SUMMARY_COLUMNS
    assert (summary["n_maps"] == len(tiny_run.examples)).all()
    fracs = summary[[f"frac_{t}" for t in PATTERN_TYPES]].to_numpy()
    assert np.allclose(fracs.sum(axis=1), 1.0)
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["run_manifest"]["model"] == tiny_run.manifest["model"]
    assert manifest["run_manifest"]["head_mask"][1][2] == 0
    assert manifest["checkpoint"]["raw"]["kind"] == "raw"
    loaded = ClassificationTable.load(tmp_path / "out")
    assert loaded.rows.shape == table.rows.shape and loaded.run_manifest == table.run_manifest
    assert (tmp_path / "out" / CLASSIFICATIONS_FILE).is_file()


def test_majority_label_and_ties():
    rows = pd.DataFrame({
        "example_id": ["a", "b", "c", "a", "b"], "layer": [0, 0, 0, 1, 1], "head": [0, 0, 0, 0, 0],
        "kind": "raw", "label": ["block", "diagonal", "block", "heterogeneous", "vertical"],
    })
    summary = head_summary(rows).set_index("layer")
    assert summary.loc[0, "majority_label"] == "block"
    assert summary.loc[0, "frac_block"] == pytest.approx(2 / 3)
    assert summary.loc[1, "majority_label"] == "vertical"  # a tie goes to the type listed first


def test_wrong_kind_and_missing_classifier(tiny_run, raw_classifier):
    with pytest.raises(KindMismatchError):
        classify_run(tiny_run, {"normed": raw_classifier})
    with pytest.raises(ValueError, match="no classifier given for the run's normed maps"):
        classify_run(tiny_run, {"raw": raw_classifier}, kinds=["raw", "normed"])


def test_classify_npy_folder(tmp_path, raw_set, raw_classifier):
    data = raw_set.subset(range(6))
    data.names = [f"ex{i}_L{i % 3}_H{i}" for i in range(6)]
    folder = save_npy_folder(tmp_path / "maps", data)
    from attnpatterns.patterns.io import read_npy_folder

    names, arrays = read_npy_folder(folder)
    table = classify_maps(names, arrays, raw_classifier, batch_size=4)
    assert list(table.rows["head"]) == list(range(6))
    assert list(table.rows["example_id"]) == [f"ex{i}" for i in range(6)]
    assert parse_map_name("whatever") == ("whatever", -1, -1)
    assert parse_map_name("s12-layer3-head10") == ("s12", 3, 10)


@pytest.fixture(scope="module")
def segment_classifier(normed_set):
    """A small normed classifier whose inputs include the segment statistics (half the maps made into pairs)."""
    rng = np.random.default_rng(5)
    segments = []
    for arr in normed_set.arrays:
        t = arr.shape[0]
        split = int(rng.integers(2, t - 1)) if rng.random() < 0.5 else t
        segments.append([0] * split + [1] * (t - split))
    data = LabeledSet(normed_set.names, normed_set.arrays, normed_set.labels, normed_set.groups, normed_set.kind,
                      normed_set.source, segments=segments)
    preprocess = replace(GRID32, segment_statistics=True)
    return train_classifier(data, preprocess=preprocess, model=SMALL, config=FAST, cross_validate=False).classifier


def test_classify_run_gives_a_segment_reading_classifier_each_examples_segment_ids(tiny_run, segment_classifier):
    assert segment_classifier.reads_segments
    table = classify_run(tiny_run, {"normed": segment_classifier}, batch_size=5)
    records = list(tiny_run.iter_maps(kinds=["normed"]))
    assert any(max(r.segment_ids) == 1 for r in records)  # the run holds a pair
    maps, ids = [r.array for r in records], [r.segment_ids for r in records]
    expected = segment_classifier.predict_proba(maps, segments=ids)
    got = table.rows[[f"p_{t}" for t in PATTERN_TYPES]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the pair's inputs do depend on its ids: without them its maps would be read as single sentences
    pair = [i for i, r in enumerate(records) if max(r.segment_ids) == 1]
    with_ids = segment_classifier.features([maps[i] for i in pair], segments=[ids[i] for i in pair]).vectors
    without = segment_classifier.features([maps[i] for i in pair]).vectors
    assert not torch.equal(with_ids, without)


def test_loose_maps_and_sets_without_ids_warn_a_segment_reading_classifier(normed_set, segment_classifier):
    with pytest.warns(UserWarning, match="single sentence"):
        classify_maps(normed_set.names[:3], normed_set.arrays[:3], segment_classifier)
    with pytest.warns(UserWarning, match="single sentence"):
        evaluate_classifier(segment_classifier, normed_set.subset(range(10)))


def test_segment_ids_follow_each_robustness_treatment(tiny_run, segment_classifier):
    seg = [0] * 7 + [1] * 4
    for size in (3, 8, 11, 17, 30):  # each new token takes the id of the original token its centre falls in
        centres = [(k + 0.5) * len(seg) / size for k in range(size)]
        want = [next(seg[j] for j in range(len(seg)) if j <= c < j + 1) for c in centres]
        assert resize_segments(seg, size).tolist() == want
    arr = np.random.default_rng(0).random((11, 11))
    for name, treat in TREATMENTS.items():
        treated = treat(arr)
        ids = treat.segments(seg, treated.shape[0])
        assert len(ids) == treated.shape[0]
        assert ids[: min(len(ids), 11)].tolist() == seg[: len(ids)] or name.startswith("resize")
    records = [r for r in tiny_run.iter_maps(kinds=["normed"]) if max(r.segment_ids) == 1]
    masks = agreement_masks(segment_classifier, [r.array for r in records], segments=[r.segment_ids for r in records])
    assert masks["pad-128"].all() and masks["pad-double"].all()  # padding is stripped with its ids: same inputs


def test_custom_treatments_bring_their_own_segment_rule(tiny_run, segment_classifier, monkeypatch):
    records = [r for r in tiny_run.iter_maps(kinds=["normed"]) if max(r.segment_ids) == 1][:12]
    arrays, ids = [r.array for r in records], [r.segment_ids for r in records]
    calls = []  # what the classifier is given: (map sizes, segment ids)
    predict = segment_classifier.predict_proba

    def spy(maps, *args, segments=None, **kwargs):
        calls.append(([m.shape[0] for m in maps], None if segments is None else [list(s) for s in segments]))
        return predict(maps, *args, segments=segments, **kwargs)

    monkeypatch.setattr(segment_classifier, "predict_proba", spy)
    # named like a built-in treatment, but with a rule of its own for the ids: that rule is used, not the built-in's
    custom = {"resize-up": Treatment(lambda a: a[:-1, :-1], lambda s, size: [9] * size), "plain": lambda a: a}
    agreement_masks(segment_classifier, arrays, custom, segments=ids)
    sizes = [a.shape[0] for a in arrays]
    assert calls == [
        (sizes, [list(s) for s in ids]),  # the maps as given
        ([n - 1 for n in sizes], [[9] * (n - 1) for n in sizes]),  # the custom treatment, with its own ids
        (sizes, None),  # a plain function has no rule for the ids: its maps are read as single sentences
    ]


def test_augmented_views_resample_segment_ids_with_their_maps(normed_set):
    part = normed_set.subset(range(20))
    halves = [[0] * (a.shape[0] // 2) + [1] * (a.shape[0] - a.shape[0] // 2) for a in part.arrays]
    data = LabeledSet(part.names, part.arrays, part.labels, part.groups, part.kind, part.source, segments=halves)
    for view in augmented_views(data, replace(GRID32, segment_statistics=True), 2, 0):
        stats = view.vectors[:, -6:]
        assert (stats[:, 0] == 1).all()  # every resized pair is still a pair ...
        assert ((stats[:, 5] - 0.5).abs() <= 0.15).all()  # ... split about where it was


def test_training_on_maps_without_segment_ids_leaves_the_segment_statistics_out(normed_set):
    assert normed_set.segments is None  # loose maps: no ids
    asked = replace(GRID32, segment_statistics=True)
    classifier = train_classifier(normed_set, preprocess=asked, model=SMALL,
                                  config=replace(FAST, max_epochs=2), cross_validate=False).classifier
    assert not classifier.reads_segments and classifier.preprocess == GRID32


def test_a_saved_table_keeps_example_ids_that_pandas_would_read_as_missing(tmp_path):
    """ClassificationTable.load reads ids as written: "NA", "null", "007", "1e3" (NA and null became NaN, merging
    two examples)."""
    from attnpatterns.patterns.classify import ClassificationTable

    ids = ["007", "7", "1e3", "NA", "null", "TRUE"]
    rows = pd.DataFrame({"example_id": ids, "layer": 0, "head": 0, "kind": "raw", "label": "vertical",
                         **{f"p_{t}": 0.2 for t in PATTERN_TYPES}})
    ClassificationTable(rows, {}, {}, "").save(tmp_path)
    assert ClassificationTable.load(tmp_path).rows["example_id"].tolist() == ids


def test_an_unfinished_extraction_run_is_not_classified(tmp_path, raw_classifier):
    """A run killed after its first shard is refused, by the library and the CLI, and no output folder is made."""
    from typer.testing import CliRunner

    from attnpatterns.cli.app import app

    model = load_model(save_tiny_model(tmp_path / "tiny"))
    examples = [TextExample(f"s{i}", t) for i, t in enumerate(TEXTS * 2)]

    calls = []

    def kill(n):  # the second chunk's progress: the first chunk's shard is flushed by then
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_maps(model, examples, tmp_path / "run", ExtractionConfig(chunk_size=2), progress=kill)
    run = open_run(tmp_path / "run")
    assert not run.is_complete and 0 < len(run.examples) < len(examples)
    with pytest.raises(ValueError, match="unfinished extraction run \\(2 of 6 examples\\)"):
        classify_run(run, raw_classifier)
    result = CliRunner().invoke(app, ["classify", str(tmp_path / "run"), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0 and "unfinished extraction run" in result.output
    assert not (tmp_path / "out").exists()
