"""The whole pipeline on a tiny model: every step runs, reruns are cached, and a killed run resumes to the same result.

The pattern classifiers here are trained on synthetic maps (tests only) so the test does not depend on the shipped
checkpoints.
"""

from __future__ import annotations

import json

import pytest

from attnpatterns.patterns.checkpoint import save_checkpoint
from attnpatterns.patterns.train import TrainConfig, train_classifier
from attnpatterns.pipeline import PipelineConfig, run_pipeline
from tests.helpers import save_tiny_model
from tests.patterns.synthetic import synthetic_set


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    model = save_tiny_model(root / "model")
    checkpoints = {}
    for kind in ("raw", "normed"):
        result = train_classifier(synthetic_set(10, kind=kind, max_tokens=24, maps_per_text=1), kind=kind,
                                  config=TrainConfig(max_epochs=3, min_epochs=1), cross_validate=False)
        checkpoints[kind] = str(save_checkpoint(result.classifier, root / f"clf-{kind}"))
    config = PipelineConfig(
        model=str(model), tasks=("entail",), seeds=2, examples=5, epochs=1, max_train_examples=32,
        max_length=32, prune_dev_examples=24, importance_examples=16, raw_checkpoint=checkpoints["raw"],
        normed_checkpoint=checkpoints["normed"], n_permutations=100, n_bootstrap=50, device="cpu",
    )
    return root, config


class _Kill(Exception):
    pass


def _results(folder):
    """comparison.json with the run folder's own path taken out (the results must not depend on it)."""
    return json.loads((folder / "compare" / "comparison.json").read_text().replace(str(folder), "<run>"))


def _stamps(task_dir):
    files = sorted(task_dir.glob("**/manifest.json")) + sorted(task_dir.glob("**/step.json"))
    return {str(f): f.stat().st_mtime_ns for f in files}


@pytest.mark.slow
def test_pipeline_runs_caches_and_resumes(setup):
    root, config = setup
    logs: list[str] = []
    report = run_pipeline(config, root / "run", log=logs.append)
    assert report.is_file() and "<html" in report.read_text()[:500].lower()
    task_dir = root / "run" / "entail"
    for sub in ("seed_0/finetune", "seed_1/prune", "survivors", "extract/finetuned-all", "classify/pretrained-all"):
        assert (task_dir / sub).is_dir(), sub
    comparison = _results(root / "run")
    assert any("▶ entail seed 1: prune" in line for line in logs)

    # a rerun reuses every step: no step folder's manifest or step file is rewritten
    stamps = _stamps(task_dir)
    again: list[str] = []
    run_pipeline(config, root / "run", log=again.append)
    assert _results(root / "run") == comparison
    assert stamps == _stamps(task_dir), "a finished step was recomputed on rerun"

    # killed during extraction, then resumed: same comparison as the uninterrupted run
    def kill(msg: str):
        if "extract finetuned-survivors" in msg or "extract pretrained-all" in msg:
            raise _Kill

    with pytest.raises(_Kill):
        run_pipeline(config, root / "killed", log=kill)
    run_pipeline(config, root / "killed")
    assert _results(root / "killed") == comparison


def test_bad_pipeline_settings_are_refused():
    with pytest.raises(ValueError, match="at least one task"):
        PipelineConfig(tasks=())
    with pytest.raises(ValueError, match="head masks"):
        PipelineConfig(method="magnitude")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        PipelineConfig(threshold=1.5)


def test_pipeline_kinds_are_the_per_head_kinds():
    assert PipelineConfig().kinds == ("raw", "normed")
    with pytest.raises(ValueError, match="subset of raw, normed.*attnpatterns extract --kinds"):
        PipelineConfig(kinds=("raw", "rollout"))
