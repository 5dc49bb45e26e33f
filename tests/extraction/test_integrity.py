"""Shard integrity: checksums in the index, ``verify``, clear errors on reading, and repair on resume.

One clean run (7 examples in 4 shards of 2) is made once; each test damages a copy of it. The damaged shard is
always ``shard-00001`` (examples t2 and t3): truncated to half its size, or with one byte of tensor data flipped so
that safetensors still parses it (only the checksum can tell).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.data.records import TextExample
from attnpatterns.extraction import DamagedShardError, ExtractionConfig, RunError, extract_maps, open_run
from attnpatterns.extraction.store import (
    CHECKSUM_MISMATCH,
    EXAMPLES_FILE,
    MAPS_DIR,
    MISSING,
    TRUNCATED,
    UNREADABLE,
)
from attnpatterns.runfolder import file_sha256

SENTENCES = [
    "The ferry left an hour late because of the fog.",
    "Bees.",
    "Two engineers argued about the bridge for most of the afternoon.",
    "Nobody answered the phone at the library on Sunday.",
    "A cat slept on the warm bonnet of the parked van.",
    "Please close the window.",
    "The orchestra tuned up while the audience found their seats in the dim hall.",
]
CONFIG = ExtractionConfig(chunk_size=2)  # 4 shards: t0 t1 | t2 t3 | t4 t5 | t6
DAMAGED = "shard-00001.safetensors"
DAMAGED_IDS = ("t2", "t3")
PROBLEM = {"truncated": TRUNCATED, "bit-flipped": CHECKSUM_MISMATCH}

runner = CliRunner()


def _examples():
    return [TextExample(f"t{i}", text) for i, text in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def clean(tiny, tmp_path_factory):
    """A complete, undamaged run (do not modify: copy it with ``_copy``)."""
    return extract_maps(tiny, _examples(), tmp_path_factory.mktemp("clean") / "run", CONFIG).root


def _copy(clean, tmp_path):
    return shutil.copytree(clean, tmp_path / "run")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path):
    """Flip one byte in the middle of the tensor data (after the JSON header): the file still parses."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[(start + len(data)) // 2] ^= 0x40
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": _truncate, "bit-flipped": _flip_a_byte}


def _damage(run_root, how):
    DAMAGE[how](run_root / MAPS_DIR / DAMAGED)


def _file_state(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, path.read_bytes()


def _all_maps(run):
    return {(r.example_id, r.kind, r.layer, r.head): r.array for r in run.iter_maps()}


def test_index_lines_record_each_shards_size_and_sha256(clean):
    lines = [json.loads(line) for line in (clean / EXAMPLES_FILE).read_text().splitlines()]
    assert len({d["shard"] for d in lines}) == 4
    for d in lines:
        shard = clean / MAPS_DIR / d["shard"]
        assert d["shard_sha256"] == file_sha256(shard) and d["shard_bytes"] == shard.stat().st_size
    result = open_run(clean).verify()
    assert result.ok and result.summary() == "ok: 4 shards, 7 examples verified"
    assert not list((clean / MAPS_DIR).glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("how", DAMAGE)
def test_verify_names_the_damaged_shard_and_its_examples(clean, tmp_path, how):
    root = _copy(clean, tmp_path)
    _damage(root, how)
    if how == "bit-flipped":  # the flip must leave a file that safetensors reads: only the checksum catches it
        from safetensors import safe_open

        with safe_open(str(root / MAPS_DIR / DAMAGED), framework="np") as handle:
            handle.get_tensor("0/raw/0")
    result = open_run(root).verify()
    assert not result.ok and result.n_shards == 4
    [damage] = result.damaged
    assert (damage.shard, damage.problem, damage.example_ids) == (DAMAGED, PROBLEM[how], DAMAGED_IDS)
    summary = result.summary()
    assert "1 of 4 shards damaged" in summary and "attnpatterns extract" in summary and DAMAGED in summary


@pytest.mark.parametrize("how", DAMAGE)
def test_reading_a_damaged_shard_raises_a_clear_run_error(clean, tmp_path, how):
    root = _copy(clean, tmp_path)
    _damage(root, how)
    run = open_run(root)
    np.testing.assert_array_equal(run.get_map("t0", 1, 2), open_run(clean).get_map("t0", 1, 2))  # others read
    with pytest.raises(DamagedShardError, match=f"{DAMAGED} is damaged: {PROBLEM[how]}") as info:
        run.get_map("t3", 0, 0)
    message = str(info.value)
    assert isinstance(info.value, RunError)
    assert "t2, t3" in message and "Rerun the same `attnpatterns extract` command" in message
    assert "attnpatterns verify" in message
    with pytest.raises(DamagedShardError, match=DAMAGED):
        list(open_run(root).iter_maps())


@pytest.mark.parametrize("state", ["complete", "unfinished"])
@pytest.mark.parametrize("how", DAMAGE)
def test_rerun_repairs_only_the_damaged_shard(tiny, clean, tmp_path, how, state):
    root = _copy(clean, tmp_path)
    _damage(root, how)
    expected_redo = set(DAMAGED_IDS)
    if state == "unfinished":  # as if killed before the last chunk's index line: its shard is an orphan
        lines = (root / EXAMPLES_FILE).read_text().splitlines(keepends=True)
        (root / EXAMPLES_FILE).write_text("".join(line for line in lines if '"t6"' not in line))
        manifest = json.loads((root / "manifest.json").read_text())
        (root / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
        expected_redo.add("t6")
    untouched = {name: _file_state(root / MAPS_DIR / name) for name in ("shard-00000.safetensors",
                                                                          "shard-00002.safetensors")}
    calls = []
    with pytest.warns(UserWarning, match=f"(?s)1 damaged shard.*{DAMAGED}.*{PROBLEM[how]}"):
        run = extract_maps(tiny, _examples(), root, CONFIG, progress=calls.append)

    assert calls[0] == 7 - len(expected_redo) and sum(calls[1:]) == len(expected_redo)  # only those re-extracted
    assert {name: _file_state(root / MAPS_DIR / name) for name in untouched} == untouched
    assert run.is_complete and run.verify().ok
    reference = open_run(clean)
    assert [e.example_id for e in run.examples] == [e.example_id for e in reference.examples]
    moved = {e.example_id for e in run.examples if e.shard != reference.example(e.example_id).shard}
    assert moved == expected_redo and DAMAGED not in {e.shard for e in run.examples if e.example_id in moved}
    ours, theirs = _all_maps(run), _all_maps(reference)
    assert ours.keys() == theirs.keys()
    for key, array in theirs.items():
        np.testing.assert_array_equal(ours[key], array, err_msg=str(key))
    assert any(DAMAGED in entry for entry in run.manifest["repaired_shards"])


def test_rerun_of_a_clean_complete_run_writes_nothing(tiny, clean, tmp_path):
    root = _copy(clean, tmp_path)
    before = {p: _file_state(p) for p in root.rglob("*") if p.is_file()}
    extract_maps(tiny, _examples(), root, CONFIG)
    assert {p: _file_state(p) for p in root.rglob("*") if p.is_file()} == before


def test_kill_during_a_repair_leaves_a_resumable_run(tiny, clean, tmp_path):
    root = _copy(clean, tmp_path)
    _truncate(root / MAPS_DIR / DAMAGED)

    def die(n):
        raise KeyboardInterrupt  # right after the damaged shard and its index lines were removed

    with pytest.warns(UserWarning, match=DAMAGED), pytest.raises(KeyboardInterrupt):
        extract_maps(tiny, _examples(), root, CONFIG, progress=die)
    left = open_run(root)
    assert not left.is_complete and len(left) == 5 and left.verify().ok
    run = extract_maps(tiny, _examples(), root, CONFIG)
    assert run.is_complete and run.verify().ok and len(run) == 7


def test_missing_shard_is_named_and_repaired(tiny, clean, tmp_path):
    root = _copy(clean, tmp_path)
    (root / MAPS_DIR / DAMAGED).unlink()
    [damage] = open_run(root).verify().damaged
    assert (damage.shard, damage.problem) == (DAMAGED, MISSING)
    with pytest.raises(DamagedShardError, match="missing"):
        open_run(root).get_map("t2", 0, 0)
    with pytest.warns(UserWarning, match=DAMAGED):
        assert extract_maps(tiny, _examples(), root, CONFIG).verify().ok


def test_runs_without_checksums_are_checked_by_parsing(tiny, clean, tmp_path):
    root = _copy(clean, tmp_path)
    lines = [json.loads(line) for line in (root / EXAMPLES_FILE).read_text().splitlines()]
    old_style = [{k: v for k, v in d.items() if k not in ("shard_sha256", "shard_bytes")} for d in lines]
    (root / EXAMPLES_FILE).write_text("".join(json.dumps(d) + "\n" for d in old_style))
    result = open_run(root).verify()
    assert result.ok and result.n_unhashed == 4 and "checked by parsing only" in result.summary()
    _truncate(root / MAPS_DIR / DAMAGED)
    [damage] = open_run(root).verify().damaged
    assert (damage.shard, damage.problem, damage.example_ids) == (DAMAGED, UNREADABLE, DAMAGED_IDS)
    with pytest.raises(DamagedShardError, match=f"{DAMAGED} is damaged: unreadable"):
        open_run(root).get_map("t2", 0, 0)
    with pytest.warns(UserWarning, match=DAMAGED):
        run = extract_maps(tiny, _examples(), root, CONFIG)
    assert run.verify().ok and run.verify().n_unhashed == 3  # the new shard has its checksum


@pytest.mark.parametrize("how", DAMAGE)
def test_cli_verify_exits_non_zero_naming_the_damaged_shard(clean, tmp_path, how):
    root = _copy(clean, tmp_path)
    res = runner.invoke(app, ["verify", str(root)])
    assert res.exit_code == 0 and "ok: 4 shards, 7 examples verified" in res.output
    _damage(root, how)
    res = runner.invoke(app, ["verify", str(root)])
    assert res.exit_code == 1
    assert f"{MAPS_DIR}/{DAMAGED}: {PROBLEM[how]}" in res.output and "attnpatterns extract" in res.output


def test_cli_verify_on_a_folder_that_is_not_a_run(tmp_path):
    res = runner.invoke(app, ["verify", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "notes").mkdir()
    res = runner.invoke(app, ["verify", str(tmp_path / "notes")])
    assert res.exit_code == 2 and "not an extraction run" in res.output


def _rewrite_shard(root, name, change):
    """Replace a shard's tensors by ``change(tensors)`` and record the new file's size and sha256 in the index, as
    a writer of that content would have: only the content checks can object to it."""
    path = root / MAPS_DIR / name
    save_file(change(load_file(str(path))), str(path))
    lines = [json.loads(line) for line in (root / EXAMPLES_FILE).read_text().splitlines()]
    for d in lines:
        if d["shard"] == name:
            d["shard_sha256"], d["shard_bytes"] = file_sha256(path), path.stat().st_size
    (root / EXAMPLES_FILE).write_text("".join(json.dumps(d) + "\n" for d in lines))


def _earlier_layout(tensors):
    """A shard as written before normed maps were stored as factors: a float16 (heads, T, T) normed map per layer,
    the raw maps only where they were asked for (here they were), no column norms."""
    out = {}
    for key, arr in tensors.items():
        row, kind, layer = key.split("/")
        if kind == "column_norms":
            raw = tensors[f"{row}/raw/{layer}"]
            normed = np.empty(raw.shape, np.float16)
            for h, i, j in np.ndindex(*raw.shape):
                normed[h, i, j] = np.float16(np.float32(raw[h, i, j]) * arr[h, j])
            out[f"{row}/normed/{layer}"] = normed
        else:
            out[key] = arr
    return out


def test_shards_of_the_earlier_layout_are_read_verified_and_resumed(tiny, clean, tmp_path):
    """Runs written before normed maps were stored as factors keep working: read, verified, resumed (the new
    shards in the new layout beside the old ones)."""
    root = _copy(clean, tmp_path)
    names = sorted(p.name for p in (root / MAPS_DIR).iterdir())
    for name in names:
        _rewrite_shard(root, name, _earlier_layout)
    old = open_run(root)
    assert old.verify().ok
    new = open_run(clean)
    for (ex, kind, layer, head), array in _all_maps(old).items():
        if kind == "raw":
            np.testing.assert_array_equal(array, new.get_map(ex, layer, head, kind))
        else:  # the stored float16 map, as float32: the product of the factors rounded to float16
            assert array.dtype == np.float32
            np.testing.assert_array_equal(array, new.get_map(ex, layer, head, kind).astype(np.float16))
    # unfinished: the last shard's index lines lost, as after a kill; the resume writes it in the new layout
    lines = (root / EXAMPLES_FILE).read_text().splitlines(keepends=True)
    (root / EXAMPLES_FILE).write_text("".join(lines[:-1]))
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    mixed = extract_maps(tiny, _examples(), root, CONFIG)
    assert mixed.verify().ok and len(mixed) == len(SENTENCES)
    last = mixed.example("t6").shard
    with safe_open(str(root / MAPS_DIR / last), framework="np") as handle:
        assert "0/column_norms/0" in handle.keys() and "0/normed/0" not in handle.keys()
    np.testing.assert_array_equal(mixed.get_map("t6", 1, 3, "normed"), new.get_map("t6", 1, 3, "normed"))
    np.testing.assert_array_equal(mixed.get_map("t0", 1, 3, "normed"), old.get_map("t0", 1, 3, "normed"))


@pytest.mark.parametrize("lost", ["column_norms", "raw"])
def test_a_shard_without_a_factor_of_its_normed_maps_is_damaged(tiny, clean, tmp_path, lost):
    root = _copy(clean, tmp_path)
    _rewrite_shard(root, DAMAGED, lambda t: {k: v for k, v in t.items() if k != f"1/{lost}/0"})
    [damage] = open_run(root).verify().damaged
    assert (damage.shard, damage.problem) == (DAMAGED, UNREADABLE)
    assert f"no tensor '1/{lost}/0'" in damage.detail and damage.example_ids == DAMAGED_IDS
    with pytest.warns(UserWarning, match=DAMAGED):
        assert extract_maps(tiny, _examples(), root, CONFIG).verify().ok


def test_column_norms_of_the_wrong_shape_are_damage(clean, tmp_path):
    root = _copy(clean, tmp_path)
    _rewrite_shard(root, DAMAGED, lambda t: {**t, "0/column_norms/1": t["0/column_norms/1"][:, :-1].copy()})
    [damage] = open_run(root).verify().damaged
    assert damage.problem == UNREADABLE and "'0/column_norms/1' has shape" in damage.detail
