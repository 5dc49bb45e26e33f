"""The background shard writer and the single tokenisation: errors in the writer thread reach the caller, a run
stopped after some shards resumes to the same bytes as an uninterrupted one, and truncation flags are right."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from attnpatterns.data.records import TextExample
from attnpatterns.extraction import ExtractionConfig, extract_maps, open_run
from attnpatterns.extraction import store
from attnpatterns.extraction.run import tokenize
from attnpatterns.extraction.store import EXAMPLES_FILE, MAPS_DIR, ShardWriter
from tests.extraction.test_integrity import SENTENCES as TEXTS

CONFIG = ExtractionConfig(batch_size=2, chunk_size=2)  # 4 shards: t0 t1 | t2 t3 | t4 t5 | t6


def _examples():
    return [TextExample(f"t{i}", t) for i, t in enumerate(TEXTS)]


def _files(root):
    """Every file of a run but the manifest (which holds times), by relative path, as bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "manifest.json"}


def _failing_after(n_ok, real):
    """An atomic_write_file that writes ``n_ok`` shards and then fails, as a full disk would."""
    calls = []

    def write(path, writer):
        if path.parent.name == MAPS_DIR:
            calls.append(path.name)
            if len(calls) > n_ok:
                raise OSError(28, "No space left on device")
        return real(path, writer)

    return write


def test_an_error_in_the_writer_thread_is_raised_by_extract_maps(tiny, tmp_path, monkeypatch):
    reference = _files(extract_maps(tiny, _examples(), tmp_path / "ref", CONFIG).root)
    monkeypatch.setattr(store, "atomic_write_file", _failing_after(1, store.atomic_write_file))
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        extract_maps(tiny, _examples(), out, CONFIG)
    # what the synchronous writer would have left: shard 0 and its two index lines, the run not complete
    assert sorted(p.name for p in (out / MAPS_DIR).iterdir()) == ["shard-00000.safetensors"]
    lines = [json.loads(x) for x in (out / EXAMPLES_FILE).read_text().splitlines()]
    assert [d["example_id"] for d in lines] == ["t0", "t1"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    monkeypatch.undo()
    run = extract_maps(tiny, _examples(), out, CONFIG)
    assert run.is_complete and run.manifest["resumed"] == 1
    assert _files(out) == reference


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_run_stopped_after_k_shards_resumes_to_the_same_bytes(tiny, tmp_path, k):
    reference = _files(extract_maps(tiny, _examples(), tmp_path / "ref", CONFIG).root)
    out = tmp_path / "run"
    chunks = []

    def stop(n):  # called once a chunk is computed, before its shard is handed to the writer
        chunks.append(n)
        if len(chunks) == k + 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_maps(tiny, _examples(), out, CONFIG, progress=stop)
    # the shards of the first k chunks are whole on disk with their index lines (the last one was in flight)
    assert sorted(p.name for p in (out / MAPS_DIR).iterdir()) == [f"shard-{i:05d}.safetensors" for i in range(k)]
    left = open_run(out)
    assert len(left) == 2 * k and not left.is_complete and left.verify().ok
    run = extract_maps(tiny, _examples(), out, CONFIG)
    assert run.is_complete and _files(out) == reference


def _maps(value):
    return {("raw", 0): np.full((2, 3, 3), value, np.float16)}


def test_shard_writer_raises_the_threads_error_on_the_next_flush_and_on_close(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "atomic_write_file", _failing_after(0, store.atomic_write_file))
    writer = ShardWriter(tmp_path, "float16", 0, background=True)
    writer.add({"example_id": "a"}, _maps(1))
    writer.flush()  # returns: the error happens in the thread
    writer.add({"example_id": "b"}, _maps(2))
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    writer = ShardWriter(tmp_path, "float16", 0, background=True)
    writer.add({"example_id": "a"}, _maps(1))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert not (tmp_path / EXAMPLES_FILE).exists()


def test_shard_writer_finishes_the_shard_in_flight_when_the_caller_fails(tmp_path, monkeypatch):
    release = threading.Event()
    real = store.atomic_write_file

    def slow(path, writer):
        release.wait(5)
        return real(path, writer)

    monkeypatch.setattr(store, "atomic_write_file", slow)
    with pytest.raises(KeyboardInterrupt), ShardWriter(tmp_path, "float16", 0, background=True) as writer:
        writer.add({"example_id": "a"}, _maps(1))
        writer.flush()
        writer.add({"example_id": "b"}, _maps(2))  # buffered, never flushed: dropped
        assert not (tmp_path / EXAMPLES_FILE).exists()  # the first shard is still in flight
        release.set()
        raise KeyboardInterrupt
    lines = [json.loads(x) for x in (tmp_path / EXAMPLES_FILE).read_text().splitlines()]
    assert [d["example_id"] for d in lines] == ["a"]
    assert sorted(p.name for p in (tmp_path / MAPS_DIR).iterdir()) == ["shard-00000.safetensors"]


@pytest.mark.parametrize("pairs", [False, True])
def test_truncation_flags_match_the_untruncated_lengths(tiny, pairs):
    tok = tiny.tokenizer
    words = ["one", "two words", "three short words", "a b c d e f g h i j", "a b c d e f g h i",
             "a b c d e f g h i j k l m n o p q r s t", "a b c d e f g h", "x"]
    examples = [TextExample(f"e{i}", w, words[-1 - i] if pairs else None) for i, w in enumerate(words)]
    full = [len(tok(e.text_a, e.text_b)["input_ids"]) for e in examples]  # one at a time, no truncation
    max_length = sorted(full)[len(full) // 2]  # one text fills the limit exactly; some are longer, some shorter
    enc, truncated = tokenize(tok, examples, max_length)
    assert truncated == [n > max_length for n in full]
    assert any(truncated) and not all(truncated) and max_length in full
    assert enc["input_ids"].shape[1] == max_length


def test_shard_writer_keeps_the_callers_error_when_the_writer_fails_too(tmp_path, monkeypatch):
    """Both fail: the caller's exception propagates (not the writer's), with the writer's named beside it where
    Python supports exception notes."""

    def full_disk(path, writer):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_file", full_disk)
    with pytest.raises(KeyError) as info, ShardWriter(tmp_path, "float16", 0, background=True) as writer:
        writer.add({"example_id": "a"}, _maps(1))
        writer.flush()
        raise KeyError("the caller's own error")
    if hasattr(info.value, "add_note"):
        assert any("No space left on device" in note for note in info.value.__notes__)
    assert not (tmp_path / EXAMPLES_FILE).exists()


@pytest.mark.parametrize("background", [False, True])
def test_a_shard_is_the_safetensors_serialisation_of_its_maps_with_its_sha256_recorded(tmp_path, background):
    """The shard on disk is byte for byte what safetensors' in-memory ``save`` makes of the same tensors (the
    writer streams it to the file instead), and its index lines record that file's sha256 and size."""
    import hashlib
    import stat

    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    examples = [{("raw", 0): rng.random((2, 4, 4)), ("normed", 0): rng.random((2, 4, 4)),
                 ("raw", 1): rng.random((3, 4, 4)), ("normed", 1): rng.random((3, 4, 4))},
                {("raw", 0): rng.random((2, 6, 6)), ("normed", 0): rng.random((2, 6, 6)),
                 ("raw", 1): rng.random((3, 6, 6)), ("normed", 1): rng.random((3, 6, 6))}]
    with ShardWriter(tmp_path, "float16", 3, background=background) as writer:
        for i, maps in enumerate(examples):
            writer.add({"example_id": f"e{i}"}, maps)
    expected = save({f"{row}/{kind}/{layer}": arr.astype(np.float16)
                     for row, maps in enumerate(examples) for (kind, layer), arr in maps.items()})
    files = sorted((tmp_path / MAPS_DIR).iterdir())
    assert [p.name for p in files] == ["shard-00003.safetensors"]  # no temporary file left beside it
    data = files[0].read_bytes()
    assert data == expected
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o644
    lines = [json.loads(x) for x in (tmp_path / EXAMPLES_FILE).read_text().splitlines()]
    assert [(d["example_id"], d["row"], d["shard"]) for d in lines] == [("e0", 0, files[0].name),
                                                                        ("e1", 1, files[0].name)]
    assert {(d["shard_sha256"], d["shard_bytes"]) for d in lines} == {(hashlib.sha256(data).hexdigest(), len(data))}
