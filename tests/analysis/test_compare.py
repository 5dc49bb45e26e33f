"""The whole comparison on constructed tables whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from attnpatterns.analysis.compare import (
    CompareConfig,
    ComparisonResult,
    TaskInputs,
    compare,
    merge_results,
    save_comparison,
)
from attnpatterns.analysis.tables import AnalysisInputError

from .builders import SURVIVORS, full_and_pruned, make_survivors, make_table, survivor_mask, table_frame

FAST = CompareConfig(n_permutations=999, n_bootstrap=200)
S = set(SURVIVORS)


def survivors_heterogeneous(layer, head, ex):
    return "heterogeneous" if (layer, head) in S else "vertical"


def alike(layer, head, ex):
    return "heterogeneous" if ex % 4 == 0 else "vertical"


def _tests(result, comparison, test="difference", type_="heterogeneous", kind="raw", weights="fine-tuned"):
    t = result.tests
    sel = t[
        (t.comparison == comparison)
        & (t.test == test)
        & (t.type == type_)
        & (t.kind == kind)
        & (t.weights == weights)
    ]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_survivors_heterogeneous_vs_rest_vertical():
    full, pruned = full_and_pruned(survivors_heterogeneous)
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)], FAST)
    for comparison in ("survivors_vs_rest", "pruned_vs_rest"):
        row = _tests(result, comparison)
        assert row.estimate == pytest.approx(1.0) and row.p_value < 0.005 and row.p_adjusted < 0.05
        assert _tests(result, comparison, test="TVD", type_="all").p_value < 0.005
        assert _tests(result, comparison, test="majority", type_="all").p_value < 0.001
    corr = result.correlations.set_index("kind")
    assert corr.loc["raw", "r"] == pytest.approx(1.0) and corr.loc["raw", "p_value"] < 0.005
    # The pruned model changes nothing here: the paired test sees no difference.
    assert _tests(result, "pruning_effect", test="TVD", type_="all").p_value == pytest.approx(1.0)
    dist = result.distributions.set_index(["kind", "condition", "type"])
    row = dist.loc[("raw", "fine-tuned, all heads", "heterogeneous")]
    assert (
        row.proportion == pytest.approx(len(SURVIVORS) / 24) and row.ci_low <= row.proportion <= row.ci_high
    )
    assert dist.loc[("raw", "fine-tuned, super-survivors", "heterogeneous")].proportion == 1.0


def test_identical_distributions_give_no_difference():
    full, pruned = full_and_pruned(alike)
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)], FAST)
    for comparison in ("survivors_vs_rest", "pruned_vs_rest", "pruning_effect"):
        row = _tests(result, comparison)
        assert row.estimate == pytest.approx(0.0) and row.p_value == pytest.approx(1.0)
    assert result.correlations["r"].abs().max() < 1e-12


def test_four_conditions_and_finetuning_effect():
    full, pruned = full_and_pruned(survivors_heterogeneous)
    pt_full, pt_pruned = full_and_pruned("vertical", model="tiny-pretrained")
    inputs = TaskInputs("toy", make_survivors(), full, pruned, pt_full, pt_pruned)
    result = compare([inputs], FAST)
    assert set(result.distributions["condition"]) == {
        "fine-tuned, all heads",
        "fine-tuned, super-survivors",
        "pretrained, all heads",
        "pretrained, super-survivors",
    }
    ft = _tests(result, "finetuning_effect", weights="fine-tuned vs pretrained")
    assert ft.estimate == pytest.approx(0.25) and ft.n_heads_a == 24
    assert set(result.heads["heads"]) == {"all heads", "super-survivors"}
    assert (
        len(result.layers[(result.layers.kind == "raw") & (result.layers.heads == "all heads")]) == 2 * 4 * 5
    )


def test_without_survivor_table_only_full_model_comparisons_run():
    full, _ = full_and_pruned(survivors_heterogeneous)
    result = compare([TaskInputs("toy", make_survivors(), full)], FAST)
    assert set(result.tests["comparison"]) == {"survivors_vs_rest"}


def test_no_super_survivors_is_reported_not_fatal():
    full = make_table(table_frame("vertical"))
    pruned = make_table(table_frame("vertical", heads=[]), head_mask=np.zeros((4, 6)))
    result = compare([TaskInputs("toy", make_survivors(heads=[]), full, survivors_table=pruned)], FAST)
    assert result.tests.empty and result.correlations.empty
    assert any("no super-survivor heads" in n for n in result.notes)
    assert set(result.distributions["condition"]) >= {"fine-tuned, all heads"}


def test_every_head_surviving_is_reported_not_fatal():
    every = [(a, b) for a in range(4) for b in range(6)]
    full, pruned = full_and_pruned("vertical", survivors=every)
    result = compare([TaskInputs("toy", make_survivors(heads=every), full, survivors_table=pruned)], FAST)
    assert set(result.tests["comparison"]) <= {"pruning_effect"}
    assert any("every head is a super-survivor" in n for n in result.notes)


def test_multiple_comparison_correction_spans_tasks():
    tasks = []
    for name in ("a", "b"):
        full, pruned = full_and_pruned(survivors_heterogeneous)
        tasks.append(TaskInputs(name, make_survivors(task=name), full, survivors_table=pruned))
    both = compare(tasks, FAST)
    one = compare(tasks[:1], FAST)

    def tvd_adjusted(result):
        t = result.tests
        return t[
            (t.task == "a") & (t.comparison == "survivors_vs_rest") & (t.test == "TVD") & (t.kind == "raw")
        ].p_adjusted.iloc[0]

    row_both, row_one = tvd_adjusted(both), tvd_adjusted(one)
    assert row_both > row_one  # a family twice as large is corrected more
    merged = merge_results([compare(tasks[:1], FAST), compare(tasks[1:], FAST)])
    np.testing.assert_allclose(
        merged.tests.sort_values(["task", "kind", "comparison", "test", "type"]).p_adjusted.to_numpy(float),
        both.tests.sort_values(["task", "kind", "comparison", "test", "type"]).p_adjusted.to_numpy(float),
    )
    with pytest.raises(AnalysisInputError, match="appears in two"):
        merge_results([one, one])


def test_same_seed_same_numbers_and_duplicate_tasks_refused():
    full, pruned = full_and_pruned(alike)
    inputs = TaskInputs("toy", make_survivors(), full, survivors_table=pruned)
    r1, r2 = compare([inputs], FAST), compare([inputs], FAST)
    np.testing.assert_array_equal(r1.tests.p_value.to_numpy(float), r2.tests.p_value.to_numpy(float))
    with pytest.raises(AnalysisInputError, match="unique"):
        compare([inputs, inputs], FAST)


def test_config_validation():
    with pytest.raises(ValueError):
        CompareConfig(n_permutations=0)
    with pytest.raises(ValueError):
        CompareConfig(confidence_level=1.5)
    with pytest.raises(ValueError, match="unknown correction"):
        CompareConfig(correction="magic")
    with pytest.raises(ValueError, match="unknown map kind"):
        CompareConfig(kinds=("sideways",))


def test_save_and_load_roundtrip(tmp_path):
    full, pruned = full_and_pruned(survivors_heterogeneous)
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)], FAST)
    written = save_comparison(result, tmp_path / "cmp", figures=False)  # figures: tests/analysis/test_cli.py
    assert {p.name for p in written["tables"]} >= {"comparison.json", "tests.csv"} and not written["figures"]
    loaded = ComparisonResult.load(tmp_path / "cmp")
    assert loaded.task_names == ["toy"] and loaded.config == result.config
    np.testing.assert_allclose(loaded.tests.p_value.to_numpy(float), result.tests.p_value.to_numpy(float))
    assert loaded.tasks["toy"]["survivors"]["super_survivor_heads"] == [list(h) for h in sorted(SURVIVORS)]
    with pytest.raises(AnalysisInputError, match="attnpatterns compare"):
        ComparisonResult.load(tmp_path)


def test_pretrained_survivor_table_must_use_the_survivor_mask():
    full, pruned = full_and_pruned(alike)
    pt_full = make_table(table_frame(alike), model="pre")
    wrong = make_table(table_frame(alike, heads=[(0, 0)]), model="pre", head_mask=survivor_mask([(0, 0)]))
    with pytest.raises(AnalysisInputError, match="pretrained super-survivors"):
        compare([TaskInputs("toy", make_survivors(), full, pruned, pt_full, wrong)], FAST)


@pytest.mark.parametrize("task", ["007", "2"])
def test_task_names_that_look_like_numbers_survive_a_round_trip(tmp_path, task):
    """The result CSVs are read back with their name columns as strings: a task called "007" keeps its rows (read as
    the number 7, the report found none of them)."""
    from attnpatterns.analysis.report import build_report

    full, pruned = full_and_pruned(lambda l, h, e: "heterogeneous" if (l + h + e) % 3 == 0 else "vertical")
    result = compare([TaskInputs(task, make_survivors(task=task), full, survivors_table=pruned)],
                     CompareConfig(n_permutations=50, n_bootstrap=20))
    result.save(tmp_path)
    back = ComparisonResult.load(tmp_path)
    assert set(back.distributions["task"]) == {task} and back.summary() == result.summary()
    assert "<p>No maps.</p>" not in build_report(back, figures=False)


def test_conditions_extracted_from_different_texts_are_refused_though_their_ids_match():
    """Example ids "0", "1", ... match for any two files of as many lines: the texts' digest (and the input file's
    sha256, and the max length) recorded by the extraction runs must match too."""
    label = lambda l, h, e: "vertical"  # noqa: E731
    frame_full, frame_pruned = table_frame(label), table_frame(label, heads=list(SURVIVORS))

    def tables(pruned_texts="aaa", pruned_file=None, pruned_max=128):
        full = make_table(frame_full, examples_sha256="aaa", config={"max_length": 128})
        config = {"max_length": pruned_max, **({"inputs": {"sha256": pruned_file}} if pruned_file else {})}
        pruned = make_table(frame_pruned, head_mask=survivor_mask(), examples_sha256=pruned_texts, config=config)
        return [TaskInputs("toy", make_survivors(), full, survivors_table=pruned)]

    cfg = CompareConfig(n_permutations=20, n_bootstrap=10)
    compare(tables(), cfg)  # the same texts: fine
    with pytest.raises(AnalysisInputError, match="different texts"):
        compare(tables(pruned_texts="bbb"), cfg)
    with pytest.raises(AnalysisInputError, match="different --max-length"):
        compare(tables(pruned_max=64), cfg)
    compare(tables(pruned_texts=None, pruned_file="f1"), cfg)  # one side recorded nothing to compare: allowed
    compare(tables(pruned_texts="bbb"), CompareConfig(n_permutations=20, n_bootstrap=10,
                                                      require_same_examples=False))


def test_an_extraction_run_records_the_digest_of_its_texts(tmp_path):
    from attnpatterns.data.records import TextExample
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model
    from tests.helpers import save_tiny_model

    model = load_model(save_tiny_model(tmp_path / "m"))
    config = ExtractionConfig(kinds=("raw",))
    a = extract_maps(model, [TextExample("0", "one text"), TextExample("1", "two")], tmp_path / "a", config)
    b = extract_maps(model, [TextExample("0", "one text", None, 1), TextExample("1", "two", None, 0)], tmp_path / "b",
                     config)
    c = extract_maps(model, [TextExample("0", "other text"), TextExample("1", "two")], tmp_path / "c", config)
    digests = [r.manifest["examples_sha256"] for r in (a, b, c)]
    assert digests[0] == digests[1] != digests[2]  # labels are no part of it, texts are
