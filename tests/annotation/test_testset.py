"""The held-out test set in ``annotations/testset/``: training never reads it, and its texts are not the corpus's.

The test set is a corpus of its own (same files as ``annotations/``) in a subfolder of the training corpus. The
corpus loader reads only the files at the top of the folder it is given, so ``attnpatterns train`` (which reads
``annotations/`` by default) never sees a map of the test set; these tests keep it that way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attnpatterns.annotation import corpus as corpus_module
from attnpatterns.annotation.corpus import (
    DEFAULT_CORPUS_DIR,
    add_maps,
    append_labels,
    load_corpus,
    read_map_index,
)
from attnpatterns.data.files import read_text_file
from attnpatterns.patterns.io import detect_format, load_labeled
from tests.annotation.conftest import make_map

TESTSET_DIR = DEFAULT_CORPUS_DIR / "testset"
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "attnpatterns" / "data" / "builtin"


def _labelled_corpus(root: Path, text_prefix: str) -> list[str]:
    maps = [make_map(layer=i, text_id=f"{text_prefix}{i:03d}", pattern="vertical", seed=i) for i in range(3)]
    add_maps(root, maps)
    append_labels(root, [{"map_id": m.map_id, "label": "vertical", "annotator": "t", "method": "test"} for m in maps])
    return [m.map_id for m in maps]


def test_training_data_leaves_out_a_nested_testset(tmp_path, monkeypatch):
    root = tmp_path / "annotations"
    train_ids = _labelled_corpus(root, "s")
    test_ids = _labelled_corpus(root / "testset", "ts")
    assert detect_format(root) == "corpus"
    assert [m.map_id for m in load_corpus(root, kind="raw")] == train_ids
    loaded = load_labeled(root, "auto", "raw")  # what `attnpatterns train --data annotations/` reads
    assert list(loaded.names) == train_ids and not set(loaded.names) & set(test_ids)
    monkeypatch.setattr(corpus_module, "DEFAULT_CORPUS_DIR", root)  # `attnpatterns train` with no --data
    assert list(load_labeled(None, "auto", "raw").names) == train_ids
    # and the test set is read when it is named, as `attnpatterns evaluate default annotations/testset` does
    assert list(load_labeled(root / "testset", "auto", "raw").names) == test_ids


def test_shipped_testset_is_apart_from_the_corpus():
    if not (TESTSET_DIR / "maps.jsonl").is_file():
        pytest.skip("no annotations/testset/maps.jsonl")
    test_index = read_map_index(TESTSET_DIR)
    corpus_index = read_map_index(DEFAULT_CORPUS_DIR)
    assert not {m["map_id"] for m in test_index} & {m["map_id"] for m in corpus_index}
    assert not {m["text_id"] for m in test_index} & {m["text_id"] for m in corpus_index}


def test_testset_texts_are_not_training_texts():
    texts = TESTSET_DIR / "texts"
    if not texts.is_dir():
        pytest.skip("no annotations/testset/texts/")
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    builtin = {norm(line) for f in ("sentences.txt", "pairs.tsv")
               for line in (BUILTIN_DIR / f).read_text(encoding="utf-8").splitlines() if line.strip()}
    builtin |= {norm(part) for text in list(builtin) for part in text.split("\t")}
    for tasks in (BUILTIN_DIR / "tasks").rglob("*.tsv"):
        for line in tasks.read_text(encoding="utf-8").splitlines():
            builtin |= {norm(part) for part in line.split("\t")[:-1]}
    for f in sorted(texts.glob("*.txt")):
        for ex in read_text_file(f):
            for part in (ex.text_a, ex.text_b):
                assert part is None or norm(part) not in builtin, f"{f.name}:{ex.example_id} is a training text"


def test_corpus_texts_are_not_testset_texts():
    """The corpus's own texts (annotations/texts/: rounds 6 and 7) share no line, nor a side of a pair, with the
    test set's."""
    texts, ours = TESTSET_DIR / "texts", DEFAULT_CORPUS_DIR / "texts"
    if not texts.is_dir() or not sorted(ours.glob("*.txt")):
        pytest.skip("no annotations/testset/texts/ or no annotations/texts/*.txt")
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    held_out = set()
    for f in sorted(texts.glob("*.txt")):
        for ex in read_text_file(f):
            held_out |= {norm(part) for part in (ex.text_a, ex.text_b) if part is not None}
            held_out.add(norm(f"{ex.text_a}\t{ex.text_b}") if ex.text_b is not None else norm(ex.text_a))
    for f in sorted(ours.glob("*.txt")):
        for ex in read_text_file(f):
            for part in (ex.text_a, ex.text_b):
                assert part is None or norm(part) not in held_out, f"{f.name}:{ex.example_id} is a test-set text"
