"""Bad inputs a new user gives the CLI: each ends in one clear ``Error: ...`` line and a non-zero exit.

Issue 12, point 4. Masks (a .pt file, an all-zero mask), a run with no maps, an unknown task, a binary labels file
and the tokenizer's own length warning; the annotation corpus cases live in tests/annotation/test_bad_inputs.py.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from attnpatterns.masking.files import EmptyMaskError, MaskError, load_head_mask, require_kept_heads
from tests.helpers import invoke, save_tiny_inputs


def first_error(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Error:"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_inputs(tmp_path_factory.mktemp("bad-inputs"))


# -- masks -------------------------------------------------------------------------------------------------------


def test_pt_mask_names_accepted_formats(tmp_path):
    torch.save(torch.ones(2, 4), tmp_path / "mask.pt")
    with pytest.raises(MaskError, match=r"mask\.pt is a PyTorch file.*\.npy array saved with numpy\.save.*run folder"):
        load_head_mask(tmp_path / "mask.pt", 2, 4)
    np.savez(tmp_path / "mask.npz", m=np.ones((2, 4)))
    with pytest.raises(MaskError, match=r"\.npz archive"):
        load_head_mask(tmp_path / "mask.npz", 2, 4)
    (tmp_path / "mask.txt").write_text("1 1 1 1\n1 1 1 1\n")
    with pytest.raises(MaskError, match=r"mask\.txt is a \.txt file that is not a \.npy array"):
        load_head_mask(tmp_path / "mask.txt", 2, 4)


def test_all_zero_head_mask_needs_allow_empty(tmp_path):
    np.save(tmp_path / "head_mask.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(EmptyMaskError, match="keeps no heads.*--allow-empty-mask"):
        load_head_mask(tmp_path, 2, 4)
    assert not load_head_mask(tmp_path, 2, 4, allow_empty=True).any()
    assert require_kept_heads(np.eye(2, 4)).shape == (2, 4)


def test_extract_refuses_pt_and_all_zero_masks_and_classify_refuses_empty_run(tiny, tmp_path):
    model, texts = tiny
    torch.save(torch.ones(2, 4), tmp_path / "mask.pt")
    r = invoke("extract", texts, "-m", model, "-o", tmp_path / "a", "--head-mask", tmp_path / "mask.pt", "-q")
    assert r.exit_code == 2, r.output
    assert "mask.pt is a PyTorch file" in first_error(r.output) and "numpy.save" in r.output
    assert "could not convert" not in r.output

    np.save(tmp_path / "zero.npy", np.zeros((2, 4), np.float32))
    r = invoke("extract", texts, "-m", model, "-o", tmp_path / "z", "--head-mask", tmp_path / "zero.npy", "-q")
    assert r.exit_code == 2 and "keeps no heads" in first_error(r.output) and "--allow-empty-mask" in r.output
    assert not (tmp_path / "z").exists()

    r = invoke("extract", texts, "-m", model, "-o", tmp_path / "z", "--head-mask", tmp_path / "zero.npy",
               "--allow-empty-mask", "--kinds", "raw", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("classify", tmp_path / "z", "-o", tmp_path / "c", "--device", "cpu", "-q")
    assert r.exit_code == 2, r.output
    assert "has no maps to classify" in first_error(r.output) and "0 heads" in r.output
    assert not (tmp_path / "c").exists()

    # layer-level kinds still have maps when every head is masked: those runs classify
    r = invoke("extract", texts, "-m", model, "-o", tmp_path / "zr", "--head-mask", tmp_path / "zero.npy",
               "--allow-empty-mask", "--kinds", "raw,rollout", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("classify", tmp_path / "zr", "-o", tmp_path / "cr", "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    assert "classified 4 maps" in r.output  # 2 texts x 2 layers of rollout, no raw map


def test_finetune_refuses_all_zero_head_mask(tmp_path):
    masks = tmp_path / "prune"
    masks.mkdir()
    np.save(masks / "head_mask.npy", np.zeros((6, 12), np.float32))
    r = invoke("finetune", "--task", "reviews", "--masks", masks, "-o", tmp_path / "f", "-q")
    assert r.exit_code == 2 and "keeps no heads" in first_error(r.output) and "--allow-empty-mask" in r.output


def test_classify_batch_size_must_be_positive(tmp_path):
    r = invoke("classify", tmp_path, "--batch-size", "0", "-o", tmp_path / "c")
    assert r.exit_code == 2 and "--batch-size" in r.output and "range() arg" not in r.output


# -- tasks -------------------------------------------------------------------------------------------------------


def test_unknown_task_lists_builtin_and_glue_tasks(tmp_path):
    r = invoke("finetune", "--task", "nosuch", "-o", tmp_path / "f", "-q")
    assert r.exit_code == 2
    line = first_error(r.output)
    assert "unknown task 'nosuch'" in line and "reviews, entail" in line and "cola" in line
    assert "--train-file" in line


# -- text and label files ----------------------------------------------------------------------------------------


def test_binary_labels_file_names_file_and_format(tmp_path):
    data = tmp_path / "maps"
    data.mkdir()
    (data / "labels.txt").write_bytes(b"\x8f\x00\xffbinary\x00")
    (data / "one.tsv").write_bytes(b"ab\xe9\tv\n")
    r = invoke("train", "-k", "raw", "--data", data / "labels.txt", "-o", tmp_path / "t", "--skip-cv", "-q")
    assert r.exit_code == 2, r.output
    line = first_error(r.output)
    assert "labels.txt is a binary file" in line and "'label = name1, name2, ...'" in line
    r = invoke("evaluate", "default", data / "one.tsv", "-k", "raw")
    assert r.exit_code == 2, r.output
    line = first_error(r.output)
    assert "one.tsv is not UTF-8 text" in line and "name<TAB>label" in line and "codec" not in line


def test_text_input_that_is_a_folder_or_binary(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    r = invoke("extract", tmp_path / "bin.txt", "-o", tmp_path / "r")
    assert r.exit_code == 2 and "bin.txt is a binary file, not text" in first_error(r.output)
    r = invoke("extract", tmp_path, "-o", tmp_path / "r")
    assert r.exit_code == 2 and "is a folder; pass a UTF-8 text file" in first_error(r.output)


# -- the tokenizer's length warning -------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_tokenizer_length_warning_is_silenced_but_own_truncation_warning_kept(tiny, tmp_path):
    model, _ = tiny
    long = tmp_path / "long.txt"
    long.write_text(" ".join(["word"] * 600) + "\n")
    handler = _Records()
    logging.getLogger("transformers").addHandler(handler)
    try:
        with pytest.warns(UserWarning, match="longer than --max-length 32"):
            r = invoke("extract", long, "-m", model, "-o", tmp_path / "r", "--max-length", "32", "--kinds", "raw")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert r.exit_code == 0, r.output
    assert not [m for m in handler.messages if "Token indices sequence length" in m]


# -- further bad inputs found by trying the commands ---------------------------------------------------------------


def test_table_rows_with_the_wrong_number_of_fields(tmp_path):
    from attnpatterns.data.files import read_table
    from attnpatterns.data.records import InputError

    (tmp_path / "extra.tsv").write_text("text\tlabel\nhello there\t1\tEXTRA\n")
    with pytest.raises(InputError, match=r"extra\.tsv:2 has 3 tab-separated field\(s\) but the header has 2"):
        read_table(tmp_path / "extra.tsv")
    (tmp_path / "short.csv").write_text("text,label\nhello there\n")
    with pytest.raises(InputError, match=r"short\.csv:2 has 1 comma-separated field\(s\)"):
        read_table(tmp_path / "short.csv")
    r = invoke("extract", tmp_path / "extra.tsv", "-o", tmp_path / "r")
    assert r.exit_code == 2 and "has 3 tab-separated field(s)" in first_error(r.output)


def test_bad_regular_expressions_are_errors(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("m1", "m2"):
        np.save(maps / f"{name}.npy", np.full((5, 5), 0.2, np.float32))
    (maps / "labels.txt").write_text("vertical = m1\ndiagonal = m2\n")
    r = invoke("train", "-k", "raw", "--data", maps, "--group-pattern", "(", "--skip-cv",
               "--allow-empty-classes", "-o", tmp_path / "t", "-q")
    assert r.exit_code == 2 and "group pattern '(' is not a valid regular expression" in first_error(r.output)
    r = invoke("classify", maps, "--name-pattern", "(", "-o", tmp_path / "c", "-q", "--device", "cpu")
    assert r.exit_code == 2 and "--name-pattern '(' is not a valid regular expression" in first_error(r.output)
    r = invoke("classify", maps, "--name-pattern", r"m(\d+)", "-o", tmp_path / "c", "-q", "--device", "cpu")
    assert r.exit_code == 2 and "lacks the named group(s) example, layer, head" in first_error(r.output)


@pytest.mark.parametrize("args, option", [
    (["extract", "--batch-size", "0"], "--batch-size"),
    (["train", "-k", "raw", "--folds", "1"], "--folds"),
    (["annotate", "build-corpus", ".", "--per-kind", "0"], "--per-kind"),
    (["annotate", "export-sheets", "-o", "x", "--per-sheet", "0"], "--per-sheet"),
])
def test_numbers_out_of_range_are_usage_errors(args, option):
    r = invoke(*args)
    assert r.exit_code == 2 and option in r.output and "Traceback" not in r.output


def test_report_of_a_file(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    r = invoke("report", tmp_path / "x.txt", "-q")
    assert r.exit_code == 2 and "is a file, not a folder" in first_error(r.output)


def test_quiet_keeps_hugging_face_notices_off_the_terminal():
    from transformers.utils import logging as hf_logging

    from attnpatterns.cli.options import hush_libraries

    before = hf_logging.get_verbosity()
    try:
        hush_libraries(False)
        assert hf_logging.get_verbosity() == before
        hush_libraries(True)
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    finally:
        hf_logging.set_verbosity(before)
