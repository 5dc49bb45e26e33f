"""Run folders: cropping, dtype, lazy reading, resume after a kill, and refusing to overwrite a different run."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from attnpatterns.data.records import InputError, TextExample
from attnpatterns.extraction import ExtractionConfig, MapCapture, RunError, RunExistsError, extract_maps, open_run
from attnpatterns.extraction.run import tokenize
from attnpatterns.extraction.store import EXAMPLES_FILE, MAPS_DIR

TEXTS = [
    "A short one.",
    "The committee postponed its decision until the spring, citing missing budget figures.",
    "Rain fell.",
    "She packed three notebooks, two pens and a camera before the long train ride north.",
    "Why did the bridge close?",
    "Old maps of the harbour show a second pier that no longer exists.",
    "The recipe needs flour, eggs, and a great deal of patience.",
]


def _examples(pairs=False):
    if pairs:
        return [TextExample(f"p{i}", t, TEXTS[(i + 1) % len(TEXTS)]) for i, t in enumerate(TEXTS)]
    return [TextExample(f"s{i}", t) for i, t in enumerate(TEXTS)]


def test_maps_are_cropped_to_real_tokens_and_rows_sum_to_one(tiny, tmp_path):
    run = extract_maps(tiny, _examples(), tmp_path / "run", ExtractionConfig(batch_size=3, chunk_size=4))
    assert len(run) == len(TEXTS) and run.is_complete
    for ex in run.examples:
        n = len(tiny.tokenizer(ex.text_a)["input_ids"])
        assert ex.n_tokens == n and ex.tokens[0] == "[CLS]" and ex.tokens[-1] == "[SEP]"
        raw = run.get_map(ex.example_id, 1, 2, "raw")
        assert raw.shape == (n, n) and raw.dtype == np.float32
        np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=3e-3)  # float16 storage
    assert sorted({(r.layer, r.head) for r in run.iter_maps(kinds=["normed"])}) == run.heads


def test_pairs_keep_segment_boundaries(tiny, tmp_path):
    run = extract_maps(tiny, _examples(pairs=True), tmp_path / "run", ExtractionConfig(kinds=("raw",)))
    ex = run.examples[0]
    first_sep = ex.tokens.index("[SEP]")
    assert ex.segment_ids[: first_sep + 1] == [0] * (first_sep + 1)
    assert set(ex.segment_ids[first_sep + 1 :]) == {1}
    assert run.kinds == ("raw",)
    with pytest.raises(RunError, match="no 'normed' maps"):
        run.get_map(ex.example_id, 0, 0, "normed")


def test_float32_on_request_matches_float16(tiny, tmp_path):
    r16 = extract_maps(tiny, _examples(), tmp_path / "a")
    r32 = extract_maps(tiny, _examples(), tmp_path / "b", ExtractionConfig(dtype="float32"))
    a, b = r16.get_map("s3", 0, 1, "normed"), r32.get_map("s3", 0, 1, "normed")
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3)
    assert (tmp_path / "b" / MAPS_DIR).stat() and not np.array_equal(a, b)


def _stored_column_norms(run, example_id, layer):
    """The normed maps' stored second factor, read straight from the shard: (heads kept, T) float32."""
    rec = run.example(example_id)
    with safe_open(str(run.root / MAPS_DIR / rec.shard), framework="np") as handle:
        return handle.get_tensor(f"{rec.row}/column_norms/{layer}")


def test_float16_maps_are_numpys_rounding_of_the_float32_maps(tiny, tmp_path):
    """The float16 cast happens in torch, once per layer; it must round exactly as numpy does, map by map. A normed
    map is the (rounded) raw map times the float32 column norms, which are the same in both dtypes."""
    examples = _examples() + _examples(pairs=True)
    r16 = extract_maps(tiny, examples, tmp_path / "a", ExtractionConfig(batch_size=3))
    r32 = extract_maps(tiny, examples, tmp_path / "b", ExtractionConfig(batch_size=3, dtype="float32"))
    n = 0
    for a, b in zip(r16.iter_maps(), r32.iter_maps()):
        assert (a.example_id, a.layer, a.head, a.kind) == (b.example_id, b.layer, b.head, b.kind)
        raw16 = r16.get_map(a.example_id, a.layer, a.head, "raw")
        assert np.array_equal(raw16, r32.get_map(a.example_id, a.layer, a.head, "raw").astype(np.float16))
        if a.kind == "raw":
            assert np.array_equal(a.array, raw16)
        else:
            pos = [h for lay, h in r16.heads if lay == a.layer].index(a.head)
            norms = _stored_column_norms(r16, a.example_id, a.layer)
            assert norms.dtype == np.float32
            assert np.array_equal(norms, _stored_column_norms(r32, a.example_id, a.layer))
            expected = np.empty_like(raw16)
            for i in range(raw16.shape[0]):  # cell by cell: α_ij (as stored) · ‖f_h(x_j)‖
                for j in range(raw16.shape[1]):
                    expected[i, j] = np.float32(raw16[i, j]) * norms[pos, j]
            assert np.array_equal(a.array, expected)
        n += 1
    assert n == len(examples) * 2 * 4 * 2  # examples x layers x heads x kinds


def test_stored_normed_maps_are_the_capture_bits_in_float32_and_half_the_bytes(tiny, tmp_path):
    """A float32 run's normed maps, multiplied back from the stored factors, are the very bits the hooks compute
    (the same float32 product); storing factors instead of a second T x T map about halves a raw + normed run."""
    examples = _examples(pairs=True)
    config = ExtractionConfig(batch_size=len(examples), chunk_size=len(examples), dtype="float32")
    run = extract_maps(tiny, examples, tmp_path / "run", config)
    enc, _ = tokenize(tiny.tokenizer, examples, config.max_length)
    with torch.inference_mode(), MapCapture(tiny.model, ("raw", "normed")) as cap:
        layers = cap.run(**enc)
    for j, ex in enumerate(examples):
        n = run.example(ex.example_id).n_tokens
        for layer, lm in enumerate(layers):
            for pos, head in enumerate(lm.head_ids):
                want = lm.maps["normed"][j, pos, :n, :n].numpy()
                assert np.array_equal(run.get_map(ex.example_id, layer, head, "normed"), want)
    raw_only = extract_maps(tiny, examples, tmp_path / "raw", ExtractionConfig(kinds=("raw",)))
    both = extract_maps(tiny, examples, tmp_path / "both")
    size = [sum(f.stat().st_size for f in (r.root / MAPS_DIR).iterdir()) for r in (raw_only, both)]
    assert size[1] < 1.35 * size[0]  # a second float16 T x T map per head would double it


def test_a_normed_only_run_stores_the_raw_factor_but_serves_only_normed_maps(tiny, tmp_path):
    both = extract_maps(tiny, _examples(), tmp_path / "both")
    normed = extract_maps(tiny, _examples(), tmp_path / "normed", ExtractionConfig(kinds=("normed",)))
    assert normed.kinds == ("normed",) and normed.verify().ok
    for ex in both.examples:
        np.testing.assert_array_equal(normed.get_map(ex.example_id, 1, 2, "normed"),
                                      both.get_map(ex.example_id, 1, 2, "normed"))
    with pytest.raises(RunError, match="no 'raw' maps"):
        normed.get_map("s0", 0, 0, "raw")


def test_iter_maps_with_filters_yields_exactly_those_maps_in_order(tiny, tmp_path):
    mask = np.ones((2, 4), np.float32)
    mask[1, 2] = 0
    run = extract_maps(tiny, _examples(), tmp_path / "run", head_mask=mask)
    for layers, heads in (([1], [2, 3]), ([0, 1], [2]), (None, [0, 3]), ([0], None)):
        got = [(r.example_id, r.layer, r.head, r.kind, r.array)
               for r in run.iter_maps(kinds=["raw", "normed"], layers=layers, heads=heads)]
        want = [(ex.example_id, layer, head, kind, run.get_map(ex.example_id, layer, head, kind))
                for ex in run.examples for kind in ("raw", "normed") for layer in (layers or [0, 1])
                for lay, head in run.heads if lay == layer and (heads is None or head in heads)]
        assert [g[:4] for g in got] == [w[:4] for w in want] and len(got) > 0
        for g, w in zip(got, want):
            assert g[4].dtype == np.float32 and np.array_equal(g[4], w[4])


def test_masked_run_has_no_maps_for_masked_heads(tiny, tmp_path):
    mask = np.ones((2, 4), np.float32)
    mask[1, 0] = 0
    run = extract_maps(tiny, _examples(), tmp_path / "run", head_mask=mask, mlp_mask=np.array([1, 0]))
    assert (1, 0) not in run.heads and (1, 1) in run.heads
    assert run.manifest["head_mask"][1][0] == 0 and run.manifest["mlp_mask"] == [1.0, 0.0]
    with pytest.raises(RunError, match="no maps"):
        run.get_map("s0", 1, 0)
    # the kept heads' column norms line up with their raw maps: masking head 0 of layer 1 changes nothing that
    # layer 1's maps are computed from, so each kept head's normed map is the unmasked run's map of the same head
    full = extract_maps(tiny, _examples(), tmp_path / "full", ExtractionConfig(dtype="float32"))
    masked = extract_maps(tiny, _examples(), tmp_path / "masked", ExtractionConfig(dtype="float32"), head_mask=mask)
    for head in (1, 2, 3):
        np.testing.assert_allclose(masked.get_map("s1", 1, head, "normed"), full.get_map("s1", 1, head, "normed"),
                                   rtol=1e-6, atol=1e-9)
    assert not np.allclose(masked.get_map("s1", 1, 1, "normed"), full.get_map("s1", 1, 2, "normed"), rtol=1e-3)


class _Kill(Exception):
    pass


def test_killed_run_resumes_without_duplicates_or_gaps(tiny, tmp_path):
    config = ExtractionConfig(batch_size=2, chunk_size=2)
    reference = extract_maps(tiny, _examples(), tmp_path / "ref", config)
    out = tmp_path / "run"
    calls = []

    def die_after_two_chunks(n):
        calls.append(n)
        if len(calls) == 2:
            raise _Kill

    with pytest.raises(_Kill):
        extract_maps(tiny, _examples(), out, config, progress=die_after_two_chunks)
    # a kill can also land between a shard write and its index lines, or mid-line
    (out / MAPS_DIR / "shard-00099.safetensors").write_bytes(b"orphan")
    with open(out / EXAMPLES_FILE, "a") as handle:
        handle.write('{"example_id": "s6", "trunc')
    partial = json.loads((out / "manifest.json").read_text())
    assert partial["status"] == "running"

    run = extract_maps(tiny, _examples(), out, config)
    ids = [e.example_id for e in run.examples]
    assert sorted(ids) == sorted(e.example_id for e in _examples()) and len(ids) == len(set(ids))
    assert not (out / MAPS_DIR / "shard-00099.safetensors").exists()
    for ex in reference.examples:
        np.testing.assert_array_equal(run.get_map(ex.example_id, 1, 3, "normed"),
                                      reference.get_map(ex.example_id, 1, 3, "normed"))
    assert run.manifest["resumed"] == 1


def test_rerunning_a_finished_run_does_nothing(tiny, tmp_path):
    first = extract_maps(tiny, _examples(), tmp_path / "run")
    shards = sorted(p.name for p in (tmp_path / "run" / MAPS_DIR).iterdir())
    again = extract_maps(tiny, _examples(), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run" / MAPS_DIR).iterdir()) == shards
    assert len(again) == len(first)


def test_different_run_is_not_overwritten_without_flag(tiny, tmp_path):
    extract_maps(tiny, _examples(), tmp_path / "run")
    with pytest.raises(RunExistsError, match="--overwrite"):
        extract_maps(tiny, _examples()[:3], tmp_path / "run")
    with pytest.raises(RunExistsError, match="--overwrite"):
        extract_maps(tiny, _examples(), tmp_path / "run", ExtractionConfig(kinds=("raw",)))
    run = extract_maps(tiny, _examples()[:3], tmp_path / "run", overwrite=True)
    assert len(run) == 3


def test_foreign_folder_is_not_overwritten(tiny, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(RunExistsError, match="not an extraction run"):
        extract_maps(tiny, _examples(), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_long_texts_are_truncated_with_a_warning(tiny, tmp_path):
    long = TextExample("long", " ".join(["word"] * 200))
    with pytest.warns(UserWarning, match="truncated"):
        run = extract_maps(tiny, [long], tmp_path / "run", ExtractionConfig(max_length=32))
    assert run.examples[0].n_tokens == 32 and run.examples[0].truncated


def test_max_length_beyond_model_is_refused(tiny, tmp_path):
    with pytest.raises(InputError, match="--max-length"):
        extract_maps(tiny, _examples(), tmp_path / "run", ExtractionConfig(max_length=4096))


def test_empty_and_duplicate_inputs_are_refused(tiny, tmp_path):
    with pytest.raises(InputError, match="no examples"):
        extract_maps(tiny, [], tmp_path / "run")
    with pytest.raises(InputError, match="unique"):
        extract_maps(tiny, [TextExample("a", "x y"), TextExample("a", "z")], tmp_path / "run")


def test_open_run_on_wrong_folder(tmp_path):
    with pytest.raises(RunError, match="attnpatterns extract"):
        open_run(tmp_path)


def test_a_tokenizer_that_pads_on_the_left_gives_the_same_maps_and_tokens(tiny, tmp_path):
    """Maps and token lists are cropped to the first n positions, so a batch must be padded on the right whatever the
    tokenizer's own ``padding_side`` says (some checkpoints save "left"); each example is checked against a run of
    batch size 1, which has no padding at all."""
    from attnpatterns.models.loading import LoadedModel

    examples = _examples() + _examples(pairs=True)
    alone = extract_maps(tiny, examples, tmp_path / "alone", ExtractionConfig(batch_size=1, dtype="float32"))
    left_tokenizer = copy.deepcopy(tiny.tokenizer)
    left_tokenizer.padding_side = "left"
    left = LoadedModel(**{**vars(tiny), "tokenizer": left_tokenizer})
    batched = extract_maps(left, examples, tmp_path / "left", ExtractionConfig(batch_size=7, dtype="float32"))
    for ex in alone.examples:
        other = batched.example(ex.example_id)
        assert (other.tokens, other.segment_ids, other.n_tokens) == (ex.tokens, ex.segment_ids, ex.n_tokens)
        for layer, head in alone.heads:
            for kind in ("raw", "normed"):
                np.testing.assert_allclose(batched.get_map(ex.example_id, layer, head, kind),
                                           alone.get_map(ex.example_id, layer, head, kind), rtol=1e-5, atol=1e-6)
    assert left_tokenizer.padding_side == "left"  # the user's tokenizer is left as it was


class _NoEncodings:
    """A tokenizer whose output carries no Rust encodings, as a slow (Python) tokenizer's does."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __call__(self, *args, **kwargs):
        from transformers import BatchEncoding

        enc = self._tokenizer(*args, **kwargs)
        return BatchEncoding(dict(enc), encoding=None)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


@pytest.mark.parametrize("encodings", [True, False])
def test_stored_tokens_are_the_tokenizers_strings_of_each_examples_ids(tiny, tmp_path, encodings):
    """Token strings come from the fast tokenizer's encodings when it has them, else from the ids; either way they
    are the tokenizer's own strings for the example tokenised alone (accents, an emoji as [UNK], pairs)."""
    from attnpatterns.models.loading import LoadedModel

    examples = _examples() + _examples(pairs=True) + [TextExample("u", "Café déjà vu 🙂 naïve", "Zürich?")]
    model = tiny if encodings else LoadedModel(**{**vars(tiny), "tokenizer": _NoEncodings(tiny.tokenizer)})
    run = extract_maps(model, examples, tmp_path / "run", ExtractionConfig(kinds=("raw",), batch_size=4))
    for ex in examples:
        ids = tiny.tokenizer(ex.text_a, ex.text_b)["input_ids"]
        want = [tiny.tokenizer.convert_ids_to_tokens(i) for i in ids]  # one id at a time
        assert run.example(ex.example_id).tokens == want
    assert "[UNK]" in run.example("u").tokens


def test_new_weights_in_the_same_model_folder_make_another_run(tmp_path):
    """A run from a local folder is tied to the weights it was made with: after new weights are saved into the
    folder, the finished run is not handed back (nor an unfinished one resumed) as if nothing had changed."""
    from attnpatterns.models import load_model
    from tests.helpers import save_tiny_model

    folder = save_tiny_model(tmp_path / "model", seed=0)
    first = extract_maps(load_model(folder), _examples(), tmp_path / "run")
    old_map = first.get_map("s1", 0, 0, "raw")
    assert extract_maps(load_model(folder), _examples(), tmp_path / "run").get_map("s1", 0, 0, "raw").tolist() == \
        old_map.tolist()  # the same weights: the finished run is reused
    save_tiny_model(folder, seed=1)  # e.g. `finetune --overwrite` into the same folder
    with pytest.raises(RunExistsError):
        extract_maps(load_model(folder), _examples(), tmp_path / "run")
    again = extract_maps(load_model(folder), _examples(), tmp_path / "run", overwrite=True)
    assert not np.array_equal(again.get_map("s1", 0, 0, "raw"), old_map)


@pytest.mark.parametrize("text_a, text_b, which", [
    ("\u200b\u200b", None, "text"),  # zero-width spaces survive the readers' strip()
    ("   ", None, "text"),
    ("hello there", "\x01\x02", "second text"),
    ("hello there", "", "second text"),
])
def test_a_text_that_gives_no_tokens_is_refused_by_name(tiny, tmp_path, text_a, text_b, which):
    """A text (or a pair's second text) the tokenizer turns into no tokens would be stored as a map of special
    tokens only, its segment ids not those the model was given: a clear error naming the example instead."""
    examples = [TextExample("fine", "a normal sentence", None if text_b is None else "and a second one"),
                TextExample("bad", text_a, text_b)]
    with pytest.raises(InputError, match=f"example 'bad': its {which} gives no tokens"):
        extract_maps(tiny, examples, tmp_path / "run")
