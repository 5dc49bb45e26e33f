"""Loading classification tables and survivors, and refusing inputs that do not describe the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnpatterns.analysis.compare import CompareConfig, TaskInputs, check_task_inputs
from attnpatterns.analysis.tables import AnalysisInputError, PatternTable, load_pattern_table, load_survivors

from .builders import (
    SURVIVORS,
    all_heads,
    classify_manifest,
    full_and_pruned,
    make_survivors,
    make_table,
    survivor_mask,
    table_frame,
    write_survivors,
    write_table,
)


def test_load_table_reads_manifest_model_grid_and_mask(tmp_path):
    write_table(tmp_path / "t", table_frame("vertical", heads=SURVIVORS), head_mask=survivor_mask())
    table = load_pattern_table(tmp_path / "t")
    assert table.model == "/models/tiny-finetuned" and table.model_name == "tiny-finetuned"
    assert (table.n_layers, table.n_heads) == (4, 6)
    assert table.mask_recorded and np.array_equal(table.head_mask, survivor_mask() > 0)
    assert table.kinds == ("raw", "normed") and table.heads == sorted(SURVIVORS)
    assert table.example_ids("raw") == {f"ex{i}" for i in range(20)}
    # The CSV itself works too, and its folder's manifest is still read.
    assert load_pattern_table(tmp_path / "t" / "classifications.csv").model == table.model


def test_table_without_manifest_has_unknown_model(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    table_frame("block").to_csv(folder / "classifications.csv", index=False)
    table = load_pattern_table(folder)
    assert table.model is None and not table.mask_recorded and table.n_layers is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["label"]), "missing column"),
        (lambda f: f.assign(label=["wobbly"] * len(f)), "unknown pattern label"),
        (lambda f: f.assign(kind=["weird"] * len(f)), "unknown map kind"),
        (lambda f: f.assign(layer=[-1] * len(f)), "non-negative integers"),
        (lambda f: f.assign(head=["x"] * len(f)), "must hold integers"),
        (lambda f: f.__class__(f.iloc[list(range(len(f))) + [0]]), "more than once"),
    ],
)
def test_malformed_tables_are_refused(mutate, message):
    with pytest.raises(AnalysisInputError, match=message):
        PatternTable.from_frame(mutate(table_frame("vertical", n_examples=3)))


def test_missing_paths_give_clear_errors(tmp_path):
    with pytest.raises(AnalysisInputError, match="does not exist"):
        load_pattern_table(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisInputError, match="attnpatterns classify"):
        load_pattern_table(tmp_path / "empty")
    with pytest.raises(AnalysisInputError, match="attnpatterns survivors"):
        load_survivors(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AnalysisInputError, match="not valid JSON"):
        load_survivors(tmp_path / "bad.json")


def test_survivors_roundtrip_and_validation(tmp_path):
    write_survivors(tmp_path / "s")
    s = load_survivors(tmp_path / "s")
    assert s.heads == sorted(SURVIVORS) and s.kappa == pytest.approx(0.21) and s.seeds == [0, 1, 2]
    assert s.head_mask.sum() == len(SURVIVORS) and s.frequency.shape == (4, 6)
    with pytest.raises(AnalysisInputError, match="outside the 4 x 6 head grid"):
        make_survivors(heads=[(4, 0)], frequency=None)
    with pytest.raises(AnalysisInputError, match="missing key"):
        (tmp_path / "x.json").write_text(json.dumps({"n_layers": 2}))
        load_survivors(tmp_path / "x.json")
    with pytest.raises(AnalysisInputError, match="head_survival_frequency has shape"):
        make_survivors(frequency=np.zeros((3, 3)))


def test_survivors_mask_file_must_agree_with_json(tmp_path):
    write_survivors(tmp_path / "s")
    np.save(tmp_path / "s" / "super_survivors_head_mask.npy", np.ones((4, 6), np.float32))
    with pytest.raises(AnalysisInputError, match="disagree"):
        load_survivors(tmp_path / "s")
    np.save(tmp_path / "s" / "super_survivors_head_mask.npy", np.ones((3, 6), np.float32))
    with pytest.raises(AnalysisInputError, match="shape"):
        load_survivors(tmp_path / "s")


# ---- consistency checks
# ----------------------------------------------------------------------------------------


def _check(**kw):
    full, pruned = full_and_pruned("vertical")
    args = dict(task="toy", survivors=make_survivors(), full=full, survivors_table=pruned)
    args.update(kw)
    return check_task_inputs(TaskInputs(**args), CompareConfig())


def test_consistent_inputs_pass():
    kinds, notes = _check()
    assert kinds == ["raw", "normed"]


def test_different_head_grid_is_refused():
    # The survivors describe a 4 x 8 model; the tables come from a 4 x 6 one.
    with pytest.raises(AnalysisInputError, match="different models"):
        _check(survivors=make_survivors(n_heads=8))


def test_full_table_from_masked_run_is_refused():
    full = make_table(table_frame("vertical"), head_mask=survivor_mask())
    with pytest.raises(AnalysisInputError, match="masked extraction run"):
        _check(full=full)


def test_full_table_lacking_heads_is_refused():
    full = make_table(table_frame("vertical", heads=all_heads()[:-2]))
    with pytest.raises(AnalysisInputError, match="lacks maps for 2 of 24 heads"):
        _check(full=full)


def test_survivor_table_with_wrong_mask_is_refused():
    other = [(0, 0), (1, 1)]
    pruned = make_table(table_frame("vertical", heads=other), head_mask=survivor_mask(other))
    with pytest.raises(AnalysisInputError, match="super_survivors_head_mask.npy"):
        _check(survivors_table=pruned)


def test_survivor_table_from_unmasked_run_is_refused():
    pruned = make_table(table_frame("vertical", heads=SURVIVORS))
    with pytest.raises(AnalysisInputError, match="unmasked extraction run"):
        _check(survivors_table=pruned)


def test_survivor_table_without_recorded_mask_is_checked_by_heads():
    manifest = classify_manifest()
    del manifest["run_manifest"]["head_mask"]
    pruned = PatternTable.from_frame(table_frame("vertical", heads=SURVIVORS[:-1]), manifest)
    with pytest.raises(AnalysisInputError, match="no maps for super-survivor head"):
        _check(survivors_table=pruned)


def test_tables_of_different_models_are_refused():
    pruned = make_table(
        table_frame("vertical", heads=SURVIVORS), head_mask=survivor_mask(), model="other-model"
    )
    with pytest.raises(AnalysisInputError, match="different models"):
        _check(survivors_table=pruned)


def test_different_examples_are_refused_unless_allowed():
    pruned = make_table(table_frame("vertical", heads=SURVIVORS, n_examples=10), head_mask=survivor_mask())
    with pytest.raises(AnalysisInputError, match="different examples"):
        _check(survivors_table=pruned)
    full, _ = full_and_pruned("vertical")
    inputs = TaskInputs("toy", make_survivors(), full, survivors_table=pruned)
    _, notes = check_task_inputs(inputs, CompareConfig(require_same_examples=False))
    assert any("different examples" in n for n in notes)


def test_survivors_of_another_task_are_refused():
    with pytest.raises(AnalysisInputError, match="survivors of task 'toy'"):
        _check(task="sst2")
    _check(task="TOY")  # names are compared loosely


def test_requested_kind_missing_from_a_table_is_refused():
    pruned = make_table(table_frame("vertical", heads=SURVIVORS, kinds=("raw",)), head_mask=survivor_mask())
    full, _ = full_and_pruned("vertical")
    inputs = TaskInputs("toy", make_survivors(), full, survivors_table=pruned)
    with pytest.raises(AnalysisInputError, match="no normed maps"):
        check_task_inputs(inputs, CompareConfig(kinds=("normed",)))
    kinds, notes = check_task_inputs(inputs, CompareConfig())
    assert kinds == ["raw"] and any("left out" in n for n in notes)


def test_classifier_mismatch_is_noted():
    full, _ = full_and_pruned("vertical")
    pruned = make_table(table_frame("vertical", heads=SURVIVORS), head_mask=survivor_mask(), sha="different")
    _, notes = _check(full=full, survivors_table=pruned)
    assert any("classifier" in n for n in notes)


def test_mlp_masks_of_the_conditions_are_checked():
    """The full-model condition is extracted without an MLP mask; the super-survivors condition keeps exactly the
    MLPs kept in every seed (make_survivors: MLP 1), as the pipeline extracts it."""
    full = make_table(table_frame("vertical"), mlp_mask=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(AnalysisInputError, match="MLP mask \\(it keeps 3 of 4 MLPs\\)"):
        _check(full=full)
    for kept in (None, [1.0, 1.0, 0.0, 0.0]):  # no MLP mask, or another one
        pruned = make_table(table_frame("vertical", heads=SURVIVORS), head_mask=survivor_mask(), mlp_mask=kept)
        with pytest.raises(AnalysisInputError, match="MLPs kept in every seed are \\[1\\]"):
            _check(survivors_table=pruned)
    pruned = make_table(table_frame("vertical", heads=SURVIVORS), head_mask=survivor_mask(), mlp_mask=None)
    _check(survivors_table=pruned, survivors=make_survivors(mlps=None))  # survivors without MLP masks: heads only
