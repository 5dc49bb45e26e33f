"""``attnpatterns finetune``: fine-tune a classification head on a task and write a loadable run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnpatterns.cli.options import (
    DEFAULT_MODEL_OPT,
    AllowEmptyMaskOpt,
    DeviceOpt,
    ModelOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    fail,
    hush_libraries,
)
from attnpatterns.cli.task_options import (
    DevFileOpt,
    GlueDirOpt,
    LabelColumnOpt,
    MetricOpt,
    RegressionOpt,
    TaskOpt,
    TextColumnOpt,
    TrainFileOpt,
    resolve_task,
)


def finetune(
    task: TaskOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (default runs/finetune/<task>/seed_<S>).")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL_OPT,
    seed: SeedOpt = 0,
    preset: Annotated[
        str, typer.Option(help="auto (quick for built-in tasks, paper otherwise), quick or paper.")
    ] = "auto",
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Learning rate (paper: 2e-5).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Total batch size over all GPUs (paper: 32).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (paper: 3).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Max tokens per example (paper: 128).")] = None,
    max_train_examples: Annotated[int | None, typer.Option(help="Train on the first N examples only.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (default 0).")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps (default 0).")] = None,
    group_by_length: Annotated[
        bool | None, typer.Option("--group-by-length/--random-batches",
                                     help="Batch texts of similar length (less padding; quick preset default).")
    ] = None,
    mixed_precision: Annotated[
        str, typer.Option(help="no, fp16 (CUDA) or bf16.")
    ] = "no",
    masks: Annotated[
        Path | None,
        typer.Option("--masks", help="Pruning run folder: hold its masked heads/MLPs/weights off while training "
                                     "(re-fine-tuning a subnetwork, e.g. from the pretrained --model)."),
    ] = None,
    allow_empty_mask: AllowEmptyMaskOpt = False,
    glue_dir: GlueDirOpt = None,
    train_file: TrainFileOpt = None,
    dev_file: DevFileOpt = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = "label",
    regression: RegressionOpt = False,
    metric: MetricOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a sequence-classification head (the paper's settings with --preset paper).

    Works under `torchrun --nproc_per_node N -m attnpatterns.cli.app finetune ...` and `accelerate launch`.
    """
    from attnpatterns.extraction import RunExistsError
    from attnpatterns.finetuning.finetune import FinetuneConfig
    from attnpatterns.finetuning.finetune import finetune as run_finetune
    from attnpatterns.masking.files import require_kept_heads
    from attnpatterns.masking.subnetwork import Subnetwork
    from attnpatterns.models import load_model
    from attnpatterns.runtime import resolve_device, seed_everything

    hush_libraries(quiet)
    try:
        seed_everything(seed)
        spec = resolve_task(task, glue_dir, train_file, dev_file, text_column, label_column, regression, metric)
        config = FinetuneConfig.for_task(
            spec, preset, learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, max_length=max_length,
            max_train_examples=max_train_examples, weight_decay=weight_decay, warmup_steps=warmup_steps,
            group_by_length=group_by_length,
            mixed_precision=mixed_precision, seed=seed,
        )
        out = output or Path("runs") / "finetune" / spec.name / f"seed_{seed}"
        subnetwork = Subnetwork.load(masks) if masks else None
        if subnetwork is not None and subnetwork.head_mask is not None and not allow_empty_mask:
            require_kept_heads(subnetwork.head_mask, origin=f"the head mask in {masks}")
        loaded = load_model(model, resolve_device(device), head="classification", num_labels=spec.num_labels)
        result = run_finetune(loaded, spec, out, config, subnetwork, overwrite=overwrite, progress=not quiet,
                              manifest_extra={"masks_from": str(masks) if masks else None})
    except (ValueError, RunExistsError) as err:  # every user error of the library is one of these
        raise fail(str(err))
    if not quiet and result.dev_metrics:
        what = "reused finished run" if result.reused else f"trained in {result.train_seconds:.0f} s"
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result.dev_metrics.items())
        typer.echo(f"{spec.name} seed {seed}: dev {scores} ({what}) -> {result.path}")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
