"""The shared rule for output folders: reuse, resume, refuse or replace."""

from __future__ import annotations

import json

import pytest

from attnpatterns.runfolder import RunExistsError, file_sha256, prepare_run_folder, read_manifest


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
