"""The run-folder module: the rule for output folders (reuse, resume, refuse, replace), manifests, step markers,
atomic writes."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess

import pytest

from attnpatterns import runfolder
from attnpatterns.runfolder import (
    RunExistsError,
    atomic_write_file,
    check_output_folder,
    file_sha256,
    fingerprint,
    mark_step_done,
    open_run_folder,
    package_versions,
    read_manifest,
    step_done,
    write_json,
)


def prepare_run_folder(out, run_type, fp, overwrite=False, resume_unfinished=False) -> bool:
    """True when the folder already holds this run (reuse or resume), as the commands read open_run_folder."""
    return open_run_folder(out, run_type, fp, overwrite, resume=resume_unfinished).state != "new"


def _run(folder, status, run_type="pruning", fp="abc"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"run_type": run_type, "fingerprint": fp, "status": status}))
    (folder / "result.txt").write_text("made by a user")
    return folder


def test_reuse_resume_refuse_replace(tmp_path):
    assert prepare_run_folder(tmp_path / "new", "pruning", "abc") is False  # missing: start afresh
    done = _run(tmp_path / "done", "complete")
    assert prepare_run_folder(done, "pruning", "abc") is True and (done / "result.txt").exists()
    unfinished = _run(tmp_path / "unfinished", "running")
    assert prepare_run_folder(unfinished, "pruning", "abc", resume_unfinished=True) is True
    assert (unfinished / "result.txt").exists()
    assert prepare_run_folder(unfinished, "pruning", "abc") is False and not unfinished.exists()  # restart
    other = _run(tmp_path / "other", "complete", fp="xyz")
    with pytest.raises(RunExistsError, match="a different pruning run.*--overwrite"):
        prepare_run_folder(other, "pruning", "abc")
    assert (other / "result.txt").exists()  # nothing lost
    assert prepare_run_folder(other, "pruning", "abc", overwrite=True) is False and not other.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="not an extraction run"):
        prepare_run_folder(foreign, "extraction", "abc")
    assert read_manifest(foreign) is None and read_manifest(done)["status"] == "complete"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunExistsError, match="not a folder"):
        prepare_run_folder(tmp_path / "a-file", "pruning", "abc")


def test_file_sha256(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_overwrite_never_deletes_a_folder_attnpatterns_did_not_make(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("months of work")
    (user / "manifest.json").write_text('{"name": "my own manifest"}')  # a manifest.json that is not ours
    for overwrite in (False, True):
        with pytest.raises(RunExistsError, match="not a survivors run.*nothing was written"):
            open_run_folder(user, "survivors", "abc", overwrite=overwrite)
    assert sorted(p.name for p in user.iterdir()) == ["manifest.json", "thesis.tex"]
    (user / "manifest.json").write_text("{ not json")
    with pytest.raises(RunExistsError):
        open_run_folder(user, "survivors", "abc", overwrite=True)
    assert (user / "thesis.tex").read_text() == "months of work"


def test_another_run_type_is_named_and_kept(tmp_path):
    extraction = _run(tmp_path / "ext", "complete", run_type="extraction")
    with pytest.raises(RunExistsError, match="holds an extraction run; nothing was written.*--overwrite"):
        check_output_folder(extraction, "pipeline", "abc")
    assert (extraction / "result.txt").exists()


def test_run_folder_start_finish_and_resume_count(tmp_path):
    folder = open_run_folder(tmp_path / "r", "pruning", "fp1")
    assert folder.state == "new" and not (tmp_path / "r").exists()  # deciding writes nothing
    folder.start({"seed": 3})
    manifest = read_manifest(tmp_path / "r")
    assert manifest["status"] == "running" and manifest["seed"] == 3 and manifest["fingerprint"] == "fp1"
    again = open_run_folder(tmp_path / "r", "pruning", "fp1", resume=True)
    assert again.state == "resume"
    again.start()
    assert read_manifest(tmp_path / "r")["resumed"] == 1
    assert read_manifest(tmp_path / "r")["created"] == manifest["created"]
    again.finish(final_score=0.5)
    done = read_manifest(tmp_path / "r")
    assert done["status"] == "complete" and done["final_score"] == 0.5 and "finished" in done
    assert open_run_folder(tmp_path / "r", "pruning", "fp1").reuse


def test_step_markers(tmp_path):
    assert not step_done(tmp_path, "x")
    mark_step_done(tmp_path, "x", {"run": "a"})
    assert step_done(tmp_path, "x") and not step_done(tmp_path, "y")
    (tmp_path / "step.json").write_text('{"fingerprint": "x"')  # a torn write is "not done", not a crash
    assert not step_done(tmp_path, "x")


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    write_json(path, {"v": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runfolder.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind


def test_atomic_write_file_hands_back_what_the_writer_returns_and_cleans_up_when_it_fails(tmp_path):
    import stat

    path = tmp_path / "shard.bin"

    def write(tmp):  # the way a library's save_file(obj, tmp) replaces the file it is given
        tmp.unlink()
        tmp.write_bytes(b"new bytes")
        return tmp.read_bytes()[:3]

    assert atomic_write_file(path, write) == b"new"
    assert path.read_bytes() == b"new bytes" and stat.S_IMODE(path.stat().st_mode) == 0o644

    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write_file(path, fails)
    assert path.read_bytes() == b"new bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.bin"]  # the half-written temporary file is gone


def test_fingerprint_ignores_key_order():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) and len(fingerprint({})) == 16


def test_a_folder_holding_only_a_torn_write_counts_as_empty(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".manifest.json.k2j3.tmp").write_text('{"run_ty')  # killed while writing the first manifest
    assert check_output_folder(tmp_path / "r", "pruning", "abc") == "new"
    (tmp_path / "r" / "notes.tmp").write_text("a user's file")
    with pytest.raises(RunExistsError):
        check_output_folder(tmp_path / "r", "pruning", "abc")


def test_package_versions_are_the_installed_ones_and_each_call_gets_its_own_dict():
    names = ("numpy", "torch", "no-such-package-attnpatterns")
    got = package_versions(names)
    assert got == {"numpy": importlib.metadata.version("numpy"), "torch": importlib.metadata.version("torch"),
                   "no-such-package-attnpatterns": None}
    got["numpy"] = "edited"  # a caller's edit must not reach the next manifest
    assert package_versions(names)["numpy"] == importlib.metadata.version("numpy")


def test_git_commit_is_asked_of_git_once_per_process(monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=f"{len(calls):040d}\n", stderr="")

    runfolder.git_commit.cache_clear()
    monkeypatch.setattr(runfolder.subprocess, "run", fake_run)
    try:
        first = runfolder.base_manifest("pruning")["git_commit"]
        second = runfolder.base_manifest("extraction")["git_commit"]
    finally:
        runfolder.git_commit.cache_clear()  # the next caller asks the real git again
    assert first == second == "0" * 39 + "1"
    assert len(calls) == 1 and calls[0][-2:] == ["rev-parse", "HEAD"]
