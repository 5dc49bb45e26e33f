"""Corpus format: round trip, duplicate ids, effective-label rules, atomic and concurrent appends, datasets."""

from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

from attnpatterns import runfolder
from attnpatterns.annotation import corpus as C
from attnpatterns.annotation.corpus import (
    LABEL_COLUMNS,
    RETRACTED,
    add_maps,
    append_labels,
    as_dataset,
    effective_labels,
    load_corpus,
    make_map_id,
    parse_label,
    read_labels,
    read_maps,
)
from attnpatterns.constants import PATTERN_TYPES

from .conftest import make_map


def _row(map_id, label, annotator="ann", pass_="first", **kw):
    return {"map_id": map_id, "label": label, "annotator": annotator, "method": "test", "pass": pass_, **kw}


def test_map_id_is_readable():
    assert make_map_id("minilm", 3, 7, "s042", "raw") == "minilm-L3H7-s042-raw"
    assert C.model_short_name("bundled:all-MiniLM-L6-v2") == "minilm"
    assert C.model_short_name("runs/ft/BERT base") == "bert-base"


def test_round_trip(tmp_path):
    m = make_map(n=11, pattern="block", text_kind="pair", segment_ids=[0] * 6 + [1] * 5)
    assert add_maps(tmp_path, [m]) == [m.map_id]
    (back,) = read_maps(tmp_path)
    assert back.metadata() == m.metadata()
    np.testing.assert_allclose(back.array, m.array, atol=1e-3)
    assert back.array.dtype == np.float32
    assert load_corpus(tmp_path) == []  # not labelled yet
    append_labels(tmp_path, [_row(m.map_id, "B")])
    (lm,) = load_corpus(tmp_path)
    assert (lm.label, lm.kind, lm.layer, lm.head, lm.n_tokens, lm.text_id) == ("block", "raw", 0, 0, 11, "s000")
    assert lm.tokens == m.tokens and lm.group == "s000"
    rows = read_labels(tmp_path)
    assert rows[0].model == m.model and rows[0].n_tokens == "11" and rows[0].date.endswith("Z")
    header = (tmp_path / C.LABELS_FILE).read_text().splitlines()[0]
    assert header.split(",") == list(LABEL_COLUMNS)


def test_duplicates(tmp_path):
    m = make_map()
    add_maps(tmp_path, [m])
    assert add_maps(tmp_path, [make_map()]) == []  # identical: skipped silently
    with pytest.raises(ValueError, match="different content"):
        add_maps(tmp_path, [make_map(seed=5)])
    with pytest.raises(ValueError, match="different content"):
        add_maps(tmp_path, [make_map(tokens=["[CLS]"] + ["x"] * 6 + ["[SEP]"])])
    assert len(read_maps(tmp_path)) == 1


def test_bad_map_shapes():
    with pytest.raises(ValueError, match="crop the map"):
        make_map(tokens=["a", "b"])
    with pytest.raises(ValueError, match="kind"):
        make_map(kind="weird")


def test_effective_label_rules(corpus):
    ids = [m.map_id for m in read_maps(corpus)]
    a, b, c, d = ids[:4]
    append_labels(corpus, [
        _row(a, "v"), _row(a, "diagonal", annotator="other"),       # latest wins
        _row(b, "block"), _row(b, "heterogeneous", pass_="second"),  # second pass never sets the label
        _row(c, "v"), _row(c, "h", pass_="second"), _row(c, "vd", pass_="adjudicated"),  # adjudication wins
        _row(d, "v"), _row(d, RETRACTED),                            # undo with nothing to restore
    ])
    assert effective_labels(corpus) == {a: "diagonal", b: "block", c: "vertical+diagonal"}
    assert {m.map_id for m in load_corpus(corpus)} == {a, b, c}
    append_labels(corpus, [_row(c, "b")])  # a later first-pass relabel beats the adjudication
    assert effective_labels(corpus)[c] == "block"
    assert {m.map_id for m in load_corpus(corpus, kind="normed")} == set()


@pytest.mark.parametrize("text,label", [
    ("vertical", "vertical"), (" Vertical ", "vertical"), ("VERTICAL + DIAGONAL", "vertical+diagonal"),
    ("vertical_diagonal", "vertical+diagonal"), ("v+d", "vertical+diagonal"), ("vd", "vertical+diagonal"),
    ("V", "vertical"), ("d", "diagonal"), ("b", "block"), ("H", "heterogeneous"), ("Block", "block"),
    ("heterogeneous", "heterogeneous"), ("Vertical & Diagonal", "vertical+diagonal"), ("d/v", "vertical+diagonal"),
    ("vertical-diagonal", "vertical+diagonal"), ("heterogenous", "heterogeneous"),
])
def test_parse_label(text, label):
    assert parse_label(text) == label


@pytest.mark.parametrize("text", ["mix", "other", "sideways", "", "v d x"])
def test_parse_label_is_strict(text):
    with pytest.raises(ValueError, match="valid labels are"):
        parse_label(text)


def test_bad_labels_write_nothing(corpus):
    ids = [m.map_id for m in read_maps(corpus)]
    with pytest.raises(ValueError, match="valid labels are vertical, diagonal"):
        append_labels(corpus, [_row(ids[0], "v"), _row(ids[1], "sideways")])
    with pytest.raises(ValueError, match="not in the corpus"):
        append_labels(corpus, [_row("nope", "v")])
    with pytest.raises(ValueError, match="pass"):
        append_labels(corpus, [_row(ids[0], "v", pass_="third")])
    assert read_labels(corpus) == []


def test_atomic_write_leaves_old_file_on_failure(corpus, monkeypatch):
    ids = [m.map_id for m in read_maps(corpus)]
    append_labels(corpus, [_row(ids[0], "v")])
    before = (corpus / C.LABELS_FILE).read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runfolder.os, "replace", boom)  # the atomic writer the corpus uses
    with pytest.raises(OSError):
        append_labels(corpus, [_row(ids[1], "d")])
    assert (corpus / C.LABELS_FILE).read_bytes() == before
    assert not [p for p in corpus.iterdir() if p.name.endswith(".tmp")]


def _append_many(root, ids, annotator, n):
    for i in range(n):
        append_labels(root, [_row(ids[i % len(ids)], PATTERN_TYPES[i % 5], annotator=annotator)])


def test_concurrent_threads(corpus):
    ids = [m.map_id for m in read_maps(corpus)]
    threads = [threading.Thread(target=_append_many, args=(corpus, ids, f"t{k}", 15)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = read_labels(corpus)
    assert len(rows) == 60
    assert {r.annotator for r in rows} == {"t0", "t1", "t2", "t3"}


def test_concurrent_processes(corpus):
    ids = [m.map_id for m in read_maps(corpus)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(corpus, ids, f"p{k}", 10)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = read_labels(corpus)
    assert len(rows) == 30
    for k in range(3):
        assert [r.label for r in rows if r.annotator == f"p{k}"] == [PATTERN_TYPES[i % 5] for i in range(10)]


def test_as_dataset(corpus):
    ids = [m.map_id for m in read_maps(corpus)]
    append_labels(corpus, [_row(ids[0], "v"), _row(ids[7], "block")])
    ds = as_dataset(corpus)
    assert len(ds) == 2
    assert ds.features["label"].names == list(PATTERN_TYPES)
    assert ds[0]["label"] == 0 and ds[1]["label"] == 3
    assert np.asarray(ds[0]["array"]).shape == (8, 8)
    assert len(as_dataset(corpus, kind="normed")) == 1
