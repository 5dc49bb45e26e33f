"""``attnpatterns prune``: structured or magnitude pruning of a fine-tuned model, or a control of the same size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnpatterns.cli.options import DeviceOpt, OverwriteOpt, QuietOpt, fail, hush_libraries
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


def _describe(step: dict, target: list[float]) -> str:
    if step["phase"] == "full":
        target.append(step["score"])
    mark = "ok" if step["passed"] else "below threshold"
    parts = [f"step {step['step']:>2} {step['phase']:<9} score {step['score']:.4f}"]
    if "heads_left" in step:
        parts.append(f"heads {step['heads_left']}")
    if "mlps_left" in step:
        parts.append(f"MLPs {step['mlps_left']}")
    if "sparsity" in step:
        parts.append(f"sparsity {step['sparsity']:.1%}")
    parts.append(f"{step['seconds']:.1f} s")
    return "  ".join(parts) + ("" if step["phase"] == "full" else f"  [{mark}]")


def prune(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Fine-tuned classifier: a finetune run folder or model id/folder.")
    ],
    method: Annotated[
        str, typer.Option(help="structured (heads + MLPs), magnitude (weights), or a control of --reference: "
                               "random or bad.")
    ] = "structured",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (default runs/prune/<task>/seed_<S>/<method>).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed recorded for the run and used to draw controls "
                                                  "(default: the fine-tuning run's seed).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="For random/bad controls: the pruning run whose masks they imitate.")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Keep pruning while dev score >= threshold x full score.")] = 0.9,
    head_fraction: Annotated[float, typer.Option(help="Share of all heads masked per joint step.")] = 0.1,
    phases: Annotated[str, typer.Option(help="Structured phases in order (subset of joint,heads,mlps).")] = (
        "joint,heads,mlps"
    ),
    amount: Annotated[float, typer.Option(help="Magnitude: share of remaining weights removed per step.")] = 0.1,
    max_steps: Annotated[int, typer.Option(help="Magnitude: at most this many steps (9: Prasanna et al.'s code "
                                                "keeps at most nine).")] = 9,
    pool: Annotated[str, typer.Option(help="Magnitude: what may be pruned: prasanna2020 (Q/K/V/attention-output/"
                                           "FFN-in weights and biases, FFN-out weight, as their code) or weights "
                                           "(the six weight matrices).")] = "prasanna2020",
    max_length: Annotated[
        int | None, typer.Option(help="Max tokens per example (default 64 for built-in tasks, else 128).")
    ] = None,
    max_dev_examples: Annotated[int | None, typer.Option(help="Score on the first N dev examples only.")] = None,
    importance_split: Annotated[str, typer.Option(help="Importance on the dev (paper) or train split.")] = "dev",
    importance_examples: Annotated[
        int | None, typer.Option(help="Importance on the first N examples of that split (default all).")
    ] = None,
    layer_norm: Annotated[bool, typer.Option("--layer-norm/--no-layer-norm", help="L2-normalise head "
                                             "importance per layer.")] = True,
    token_norm: Annotated[bool, typer.Option("--token-norm/--no-token-norm", help="Divide MLP importance by "
                                             "the number of tokens.")] = True,
    global_norm: Annotated[bool, typer.Option("--global-norm/--no-global-norm", help="Min-max scale importance "
                                              "over the model.")] = True,
    importance_variant: Annotated[str, typer.Option(help="How gradients become importance: per_example (default), "
                                                    "bertology (as Prasanna et al.'s masks) or michel.")] = (
        "per_example"
    ),
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass (speed only, except for the bertology "
                                                 "and michel importance variants).")] = 32,
    mixed_precision: Annotated[str, typer.Option(help="Forward passes under autocast: no, fp16 (CUDA) or bf16.")] = (
        "no"
    ),
    task: TaskOpt = None,
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
    """Prune a fine-tuned model; write head_mask.npy / mlp_mask.npy (or weight masks) and pruning_log.json."""
    from attnpatterns.extraction import RunExistsError
    from attnpatterns.models import load_model
    from attnpatterns.pruning.checkpoint import PRUNING_STATE_FILE
    from attnpatterns.pruning.importance import ImportanceConfig
    from attnpatterns.pruning.prune import METHODS, default_config, run_pruning
    from attnpatterns.runfolder import read_manifest
    from attnpatterns.runtime import resolve_device, seed_everything

    hush_libraries(quiet)
    if method not in METHODS:
        raise fail(f"--method must be one of {', '.join(METHODS)}, not {method!r}.")
    folder = Path(model)
    manifest = (read_manifest(folder) if folder.is_dir() else None) or {}
    if seed is None:
        seed = int(manifest.get("seed", 0))
    try:
        seed_everything(seed)
        spec = resolve_task(task, glue_dir, train_file, dev_file, text_column, label_column, regression, metric,
                            model_folder=folder)
        if method == "structured":
            config = default_config(
                method, spec, threshold=threshold, head_fraction=head_fraction, max_length=max_length,
                phases=tuple(p.strip() for p in phases.split(",") if p.strip()), max_dev_examples=max_dev_examples,
                importance_split=importance_split, importance_examples=importance_examples, batch_size=batch_size,
                importance=ImportanceConfig(normalize_heads_by_layer=layer_norm, normalize_mlps_by_tokens=token_norm,
                                            normalize_global=global_norm, variant=importance_variant),
            )
        elif method == "magnitude":
            config = default_config(method, spec, threshold=threshold, amount=amount, max_steps=max_steps,
                                    max_length=max_length, max_dev_examples=max_dev_examples, batch_size=batch_size,
                                    pool=pool)
        else:
            config = None
        out = output or Path("runs") / "prune" / spec.name / f"seed_{seed}" / method
        loaded = load_model(model, resolve_device(device))
        target: list[float] = []

        def progress(step: dict) -> None:
            if not quiet:
                typer.echo(_describe(step, target), err=True)

        if not quiet and (out / PRUNING_STATE_FILE).is_file():
            typer.echo(f"resuming the unfinished run in {out} after its last finished step", err=True)
        result = run_pruning(loaded, spec, out, method, config, seed, reference, overwrite, progress,
                             manifest_extra={"finetune_run": manifest.get("fingerprint")},
                             mixed_precision=mixed_precision)
    except (ValueError, RunExistsError) as err:  # every user error of the library is one of these
        raise fail(str(err))
    if not quiet:
        final = ", ".join(f"{k} {v}" for k, v in result.subnetwork.summary().items() if not k.endswith("total"))
        typer.echo(f"{spec.name} seed {seed} {method}: {result.metric} {result.full_score:.4f} -> "
                   f"{result.final_score:.4f} ({final}) -> {out}")


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
