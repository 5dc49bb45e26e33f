"""``attnpatterns survivors``: super-survivors, survival frequency and Fleiss' κ of pruning masks across seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnpatterns.cli.options import OverwriteOpt, QuietOpt, fail


def survivors(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Pruning run folders (one per seed), or a folder in the published layout "
                            "<TASK>/seed_<S>/head_mask.npy (e.g. masks/heads_mlps)."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write (one subfolder per task when there are several).")
    ] = Path("runs/survivors"),
    model_name: Annotated[
        str | None, typer.Option(help="Model the masks belong to, when the folders do not say (published masks: "
                                         "bert-base-uncased).")
    ] = None,
    heatmap: Annotated[bool, typer.Option("--heatmap/--no-heatmap", help="Write survival_heatmap.png.")] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Combine the masks of several seeds: heads and MLPs kept in every seed, per-head frequency, Fleiss' κ."""
    from attnpatterns.masking.files import MaskError
    from attnpatterns.pruning.survivors import compute_survivors, find_mask_sets
    from attnpatterns.runfolder import RunExistsError, is_attnpatterns_run

    try:
        groups = find_mask_sets(paths)
        results = {task: compute_survivors(items, task=task, model=model_name) for task, items in groups.items()}
    except MaskError as err:
        raise fail(str(err))
    single = len(results) == 1
    folders = {task: output if single else output / task.replace("/", "_") for task in results}
    try:  # every folder is checked before anything is written
        for task, result in results.items():
            result.check_folder(folders[task], heatmap, overwrite)
    except RunExistsError as err:
        raise fail(str(err))
    if not single and output.is_dir():  # one folder per task inside: the rest of it must be attnpatterns runs too
        foreign = sorted(p.name for p in output.iterdir() if p not in folders.values() and not is_attnpatterns_run(p))
        if foreign:
            raise fail(f"{output} holds files that are not attnpatterns runs ({', '.join(foreign[:3])}); nothing was "
                       "written. Choose another --output (a new or empty folder).")
    for task, result in results.items():
        result.save(folders[task], heatmap=heatmap, overwrite=overwrite)
    if quiet:
        return
    typer.echo(f"{'task':<16} {'seeds':>5} {'heads':>9} {'MLPs':>6} {'kappa':>7}")
    for task, result in results.items():
        summary = result.to_dict()
        heads = f"{len(summary['super_survivor_heads'])}/{result.n_layers * result.n_heads}"
        mlp_ids = summary["super_survivor_mlps"]
        mlps = "-" if mlp_ids is None else f"{len(mlp_ids)}/{result.n_layers}"
        kappa = "n/a" if result.kappa is None else f"{result.kappa:.3f}"
        typer.echo(f"{task:<16} {len(result.seeds):>5} {heads:>9} {mlps:>6} {kappa:>7}")
    typer.echo(f"super-survivors, frequencies and heatmaps -> {output}")


def register(app: typer.Typer) -> None:
    app.command("survivors")(survivors)
