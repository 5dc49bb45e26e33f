"""``attnpatterns pipeline``: the main job.

finetune → prune (seeds) → survivors → extract → classify → compare → report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import (
    DEFAULT_MODEL_OPT,
    DeviceOpt,
    ModelOpt,
    OverwriteOpt,
    QuietOpt,
    fail,
    hush_libraries,
)


def pipeline(
    output: Annotated[Path, typer.Option("--output", "-o", help="Pipeline folder (every step's run inside).")] = Path(
        "runs/pipeline"
    ),
    model: ModelOpt = DEFAULT_MODEL_OPT,
    tasks: Annotated[
        str, typer.Option(help="Comma-separated tasks: built-in (reviews, entail) or GLUE (cola, sst2, mrpc, ...).")
    ] = "reviews",
    seeds: Annotated[int, typer.Option(help="Pruning seeds per task (seeds 0..N-1; the paper used 5).")] = 3,
    examples: Annotated[int, typer.Option(help="Dev examples whose maps are extracted (the paper used 100).")] = 24,
    glue_dir: Annotated[
        Optional[Path], typer.Option(help="Offline GLUE folder in the classic layout (glue_data/SST-2/...).")
    ] = None,
    preset: Annotated[str, typer.Option(help="Fine-tuning preset: auto, quick or paper.")] = "auto",
    epochs: Annotated[Optional[float], typer.Option(help="Fine-tuning epochs (default: the preset's).")] = None,
    max_train_examples: Annotated[Optional[int], typer.Option(help="Fine-tune on the first N examples.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Max tokens (default: the preset's).")] = None,
    prune_dev_examples: Annotated[
        Optional[int], typer.Option(help="Score pruning steps on the first N dev examples.")
    ] = None,
    importance_examples: Annotated[
        Optional[int], typer.Option(help="Importance scores over the first N examples.")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Keep pruning while score >= threshold x full score.")] = 0.9,
    raw_checkpoint: Annotated[
        Optional[Path], typer.Option(help="Classifier for raw maps (default: the shipped one).")
    ] = None,
    normed_checkpoint: Annotated[
        Optional[Path], typer.Option(help="Classifier for normed maps (default: the shipped one).")
    ] = None,
    permutations: Annotated[int, typer.Option(help="Permutations per test.")] = 2000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 1000,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole study and write an HTML report. Rerun the same command to resume after an interruption."""
    from attnpatterns.pipeline import PipelineConfig, run_pipeline

    hush_libraries(quiet)
    start = time.perf_counter()
    task_list = tuple(t.strip() for t in tasks.split(",") if t.strip())
    try:
        config = PipelineConfig(
            model=model, tasks=task_list, seeds=seeds, examples=examples,
            glue_dir=None if glue_dir is None else str(glue_dir), preset=preset, epochs=epochs,
            max_train_examples=max_train_examples, max_length=max_length, prune_dev_examples=prune_dev_examples,
            importance_examples=importance_examples, threshold=threshold,
            raw_checkpoint=None if raw_checkpoint is None else str(raw_checkpoint),
            normed_checkpoint=None if normed_checkpoint is None else str(normed_checkpoint),
            n_permutations=permutations, n_bootstrap=bootstrap, device=device,
        )
        log = (lambda msg: None) if quiet else (lambda msg: typer.echo(msg, err=True))
        report = run_pipeline(config, output, log=log, show_progress=not quiet, overwrite=overwrite)
    except (ValueError, FileExistsError) as err:
        raise fail(str(err))
    typer.echo(f"report: {report}  ({time.perf_counter() - start:.0f} s)")


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline)
