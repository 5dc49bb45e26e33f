"""The HTML report and the discovery of a run folder's pieces (comparisons, pruning logs)."""

from __future__ import annotations

import json

import pytest

from attnpatterns.analysis.compare import CompareConfig, TaskInputs, compare, save_comparison
from attnpatterns.analysis.report import HOW_TO_READ, build_report, collect_run, report_from_run
from attnpatterns.analysis.runs import find_pruning_logs, load_pruning_log
from attnpatterns.analysis.tables import AnalysisInputError

from .builders import SURVIVORS, full_and_pruned, make_survivors, write_pruning_log

FAST = CompareConfig(n_permutations=199, n_bootstrap=100)


def _result(task="toy"):
    s = set(SURVIVORS)
    full, pruned = full_and_pruned(lambda a, b, e: "heterogeneous" if (a, b) in s and e % 2 else "vertical")
    return compare([TaskInputs(task, make_survivors(task=task), full, survivors_table=pruned)], FAST)


@pytest.fixture(scope="module")
def result():
    return _result()


def test_report_has_every_section_and_embedded_figures(result, tmp_path):
    logs = [
        load_pruning_log(write_pruning_log(tmp_path / f"seed_{s}", s), task="toy", seed=s) for s in range(3)
    ]
    html = build_report(result, logs, run_manifest={"command": ["attnpatterns", "pipeline"]}, source="runs/x")
    for text in (
        "How to read this",
        "At a glance",
        "Run",
        "Task: toy",
        "Pruning",
        "Super-survivors",
        "Fleiss",
        "Pattern distributions",
        "Tests",
        "pruned_vs_rest",
        "Correlation",
        "Per-head views",
        "Methods",
        "attnpatterns pipeline",
        "seed 2: 4 steps",
    ):
        assert text in html, text
    assert HOW_TO_READ[:60] in html
    assert (
        html.count("data:image/png;base64,") >= 6
    )  # curves, survival, distribution, intervals, grids, layers
    assert "<script" not in html  # self-contained and static
    assert 'content="attnpatterns report"' in html


def test_controls_are_listed_apart(result, tmp_path):
    main = load_pruning_log(write_pruning_log(tmp_path / "seed_0", seed=0), task="toy")
    folder = write_pruning_log(tmp_path / "random" / "seed_0", seed=0)
    data = json.loads((folder / "pruning_log.json").read_text())
    (folder / "pruning_log.json").write_text(json.dumps(dict(data, method="random")))
    control = load_pruning_log(folder, task="toy", seed=0)
    assert control.method == "random" and main.method == "structured"
    html = build_report(result, [main, control], figures=False)
    assert "Other pruning runs" in html and "random, seed 0" in html


def test_report_without_figures_or_logs(result):
    html = build_report(result, figures=False)
    assert "data:image/png" not in html and "No pruning log" in html


def test_notes_are_shown(result):
    result = _result()
    result.notes.append("something odd <b>happened</b>")
    html = build_report(result, figures=False)
    assert "something odd &lt;b&gt;happened&lt;/b&gt;" in html


@pytest.mark.parametrize(
    "content, steps, problem",
    [
        ([{"score": 0.8, "heads_left": 10, "mlps_left": 2}], 1, None),
        (
            {"metric": "mcc", "steps": [{"step": 3, "dev_score": {"mcc": 0.4, "acc": 0.9}, "heads_left": 5}]},
            1,
            None,
        ),
        ({"history": [{"eval_score": "0.5"}, {"eval_score": 0.45, "phase": "mlps"}]}, 2, None),
        ([], 0, "no steps"),
        ([1, 2], 0, "not an object"),
        ({"foo": 1}, 0, "expected a list"),
        ([{"heads_left": 3}], 1, "no step has a score"),
    ],
)
def test_pruning_logs_are_read_tolerantly(tmp_path, content, steps, problem):
    path = tmp_path / "pruning_log.json"
    path.write_text(json.dumps(content))
    log = load_pruning_log(path)
    assert len(log.steps) == steps
    assert (log.problem is None) if problem is None else (problem in log.problem)


def test_pruning_log_in_the_format_attnpatterns_prune_writes(tmp_path):
    log = load_pruning_log(write_pruning_log(tmp_path / "seed_0", seed=0))
    assert log.problem is None and log.metric == "accuracy" and log.target == pytest.approx(0.81)
    assert [s.passed for s in log.steps] == [True, True, True, False] and log.steps[1].heads_left == 21


def test_pruning_log_details(tmp_path):
    path = tmp_path / "pruning_log.json"
    path.write_text(json.dumps({"metric": "mcc", "steps": [{"step": 3, "score": {"mcc": 0.4, "acc": 0.9}}]}))
    step = load_pruning_log(path).steps[0]
    assert step.step == 3 and step.score == pytest.approx(0.4)
    path.write_text("{broken")
    assert "not valid JSON" in load_pruning_log(path).problem
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pruning_log(tmp_path / "missing")


def test_find_pruning_logs_by_manifest_and_by_path(tmp_path):
    write_pruning_log(tmp_path / "a" / "x", seed=7, task="toy")  # task and seed from manifest.json
    folder = tmp_path / "toy" / "prune" / "seed_2"
    folder.mkdir(parents=True)
    (folder / "pruning_log.json").write_text(json.dumps([{"score": 0.7}]))  # from the path
    logs = {(log.task, log.seed) for log in find_pruning_logs(tmp_path, ["toy", "other"])}
    assert logs == {("toy", 7), ("toy", 2)}


def test_collect_run_and_report_from_run(result, tmp_path):
    save_comparison(result, tmp_path / "run" / "compare", figures=False)
    for s in range(2):
        write_pruning_log(tmp_path / "run" / "prune" / f"seed{s}", s)
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"config": {"seeds": 2, "examples": 20}}))
    inputs = collect_run(tmp_path / "run")
    assert inputs.comparison.task_names == ["toy"] and len(inputs.pruning_logs) == 2
    html = report_from_run(tmp_path / "run", figures=False)
    assert "seeds=2" in html and "seed 1:" in html


def test_collect_run_merges_per_task_comparisons(tmp_path):
    save_comparison(_result("a"), tmp_path / "a" / "compare", figures=False)
    save_comparison(_result("b"), tmp_path / "b" / "compare", figures=False)
    assert collect_run(tmp_path).comparison.task_names == ["a", "b"]


def test_collect_run_errors(tmp_path):
    with pytest.raises(AnalysisInputError, match="does not exist"):
        collect_run(tmp_path / "nope")
    with pytest.raises(AnalysisInputError, match="attnpatterns compare"):
        collect_run(tmp_path)


def test_the_report_states_the_interval_level_and_marks_significance_unrounded():
    """With --confidence 0.80 the text says 80%, not 95%; an adjusted p of 0.0497 (shown as 0.050) is marked
    significant and one of 0.0503 (also 0.050) is not."""
    import re
    from dataclasses import replace

    result = _result()
    assert "95% bootstrap intervals" in build_report(result, figures=False)
    assert "80% bootstrap intervals" in build_report(replace(result, config=replace(result.config,
                                                                                    confidence_level=0.8)),
                                                     figures=False)
    tests = result.tests.copy()
    rows = tests.index[(tests["test"] == "difference") & tests["p_value"].notna()][:2]
    tests.loc[rows, "p_adjusted"] = [0.0497, 0.0503]
    html = build_report(replace(result, tests=tests), figures=False)
    marked = re.findall(r"<td( class='sig')?>0\.050</td>", html)
    assert sorted(marked) == ["", " class='sig'"]


def test_the_summary_does_not_say_no_heterogeneous_map_when_every_map_is_one():
    full, pruned = full_and_pruned(lambda a, b, e: "heterogeneous")
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)], FAST)
    assert "not testable: no map, or every map, heterogeneous" in result.summary()
