"""`attnpatterns compare` and `attnpatterns report` end to end on constructed tables; their clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from attnpatterns.cli.app import app
from attnpatterns.cli.compare import split_task

from .builders import SURVIVORS, survivor_mask, table_frame, write_pruning_log, write_survivors, write_table

runner = CliRunner()
FAST = ["--permutations", "199", "--bootstrap", "100"]
S = set(SURVIVORS)


def _het(layer, head, ex):
    return "heterogeneous" if (layer, head) in S else "vertical"


def _make_task(root, task="toy", pretrained=False):
    write_table(root / "ft_full", table_frame(_het))
    write_table(root / "ft_surv", table_frame(_het, heads=SURVIVORS), head_mask=survivor_mask())
    write_survivors(root / "surv", task=task)
    if pretrained:
        write_table(root / "pt_full", table_frame("vertical"), model="pre")
        write_table(
            root / "pt_surv", table_frame("vertical", heads=SURVIVORS), model="pre", head_mask=survivor_mask()
        )
    return root


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_compare_then_report(tmp_path):
    root = _make_task(tmp_path, pretrained=True)
    for s in range(3):
        write_pruning_log(root / "prune" / f"seed_{s}", s)
    res = _invoke(
        "compare",
        "--full",
        root / "ft_full",
        "--survivors",
        root / "ft_surv",
        "--survivor-masks",
        root / "surv",
        "--pretrained-full",
        root / "pt_full",
        "--pretrained-survivors",
        root / "pt_surv",
        "-o",
        root / "compare",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert "toy raw: heterogeneous" in res.output and "wrote" in res.output
    out = root / "compare"
    for name in (
        "comparison.json",
        "distributions.csv",
        "tests.csv",
        "correlations.csv",
        "head_majority.csv",
        "layer_distribution.csv",
        "manifest.json",
        "figures/toy_distribution.png",
        "figures/toy_distribution.svg",
        "figures/toy_majority_normed.svg",
    ):
        assert (out / name).is_file(), name
    tests = pd.read_csv(out / "tests.csv")
    het = tests[
        (tests.comparison == "pruned_vs_rest")
        & (tests.type == "heterogeneous")
        & (tests.kind == "raw")
        & (tests.weights == "fine-tuned")
    ].iloc[0]
    assert het.estimate == pytest.approx(1.0) and het.p_value < 0.02
    assert json.loads((out / "manifest.json").read_text())["run_type"] == "comparison"

    # Rerunning the same comparison into the same folder is fine; a different one needs --overwrite.
    same = _invoke(
        "compare",
        "--full",
        root / "ft_full",
        "--survivors",
        root / "ft_surv",
        "--survivor-masks",
        root / "surv",
        "--pretrained-full",
        root / "pt_full",
        "--pretrained-survivors",
        root / "pt_surv",
        "-o",
        out,
        *FAST,
        "-q",
        "--no-figures",
    )
    assert same.exit_code == 0, same.output
    other = _invoke(
        "compare", "--full", root / "ft_full", "--survivor-masks", root / "surv", "-o", out, *FAST
    )
    assert other.exit_code == 2 and "--overwrite" in other.output

    res = _invoke("report", root, "--no-figures")  # figures in reports: tests/analysis/test_report.py
    assert res.exit_code == 0, res.output
    html = (root / "report.html").read_text()
    assert "How to read this" in html and "seed 2" in html and "pretrained, super-survivors" in html
    again = _invoke(
        "report", root, "-o", root / "report.html", "--no-figures", "-q"
    )  # replaces its own report
    assert again.exit_code == 0 and again.output == "", again.output


def test_compare_several_tasks_with_prefixes(tmp_path):
    args = []
    for task in ("alpha", "beta"):
        _make_task(tmp_path / task, task=task)
        args += [
            "--full",
            f"{task}={tmp_path / task / 'ft_full'}",
            "--survivors",
            f"{task}={tmp_path / task / 'ft_surv'}",
            "--survivor-masks",
            f"{task}={tmp_path / task / 'surv'}",
        ]
    res = _invoke("compare", *args, "-o", tmp_path / "out", "--kind", "raw", "--no-figures", *FAST)
    assert res.exit_code == 0, res.output
    dist = pd.read_csv(tmp_path / "out" / "distributions.csv")
    assert set(dist.task) == {"alpha", "beta"} and set(dist.kind) == {"raw"}
    assert not (tmp_path / "out" / "figures").exists()


def test_split_task():
    assert split_task("sst2=runs/a") == ("sst2", __import__("pathlib").Path("runs/a"))
    assert split_task("runs/a")[0] is None
    assert split_task("a/b=c")[0] is None  # a prefix never holds a slash


@pytest.mark.parametrize(
    "args, message",
    [
        (["--survivor-masks", "{root}/surv"], "Missing option"),
        (["--full", "{root}/ft_full"], "Missing option"),
        (
            ["--full", "a={root}/ft_full", "--full", "{root}/ft_full", "--survivor-masks", "{root}/surv"],
            "some paths name their task",
        ),
        (
            [
                "--full",
                "{root}/ft_full",
                "--full",
                "{root}/ft_full",
                "--survivor-masks",
                "{root}/surv",
                "--task",
                "t",
            ],
            "given twice",
        ),
        (["--full", "a={root}/ft_full", "--survivor-masks", "b={root}/surv"], "has no --survivor-masks"),
        (
            ["--full", "{root}/ft_full", "--survivor-masks", "{root}/surv", "--kind", "sideways"],
            "choose from",
        ),
        (
            ["--full", "{root}/ft_full", "--survivor-masks", "{root}/surv", "--correction", "magic"],
            "unknown correction",
        ),
        (["--full", "{root}/nowhere", "--survivor-masks", "{root}/surv"], "does not exist"),
        (["--full", "{root}/ft_full", "--survivor-masks", "{root}/ft_full"], "survivors.json"),
        (["--full", "{root}/ft_surv", "--survivor-masks", "{root}/surv"], "masked extraction run"),
        (
            ["--full", "{root}/ft_full", "--survivors", "{root}/ft_full", "--survivor-masks", "{root}/surv"],
            "unmasked extraction run",
        ),
        (["--full", "{root}/ft_full", "--survivor-masks", "{root}/surv_big"], "different models"),
        (
            ["--full", "{root}/ft_full", "--survivor-masks", "{root}/surv", "--task", "cola"],
            "survivors of task",
        ),
    ],
)
def test_compare_bad_input(tmp_path, args, message):
    root = _make_task(tmp_path)
    write_survivors(root / "surv_big", heads=[(0, 0)], n_layers=12, n_heads=12)
    res = _invoke("compare", *[a.format(root=root) for a in args], "-o", root / "out", *FAST)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert not (root / "out").exists()  # refused before anything was written


def test_report_bad_input(tmp_path):
    res = _invoke("report", tmp_path)
    assert res.exit_code == 2 and "no comparison results" in res.output
    res = _invoke("report", tmp_path, "-o", tmp_path / "r.pdf")
    assert res.exit_code == 2 and ".html" in res.output
    (tmp_path / "mine.html").write_text("<html>my notes</html>")
    res = _invoke("report", tmp_path, "-o", tmp_path / "mine.html")
    assert res.exit_code == 2 and "not an attnpatterns report" in res.output
