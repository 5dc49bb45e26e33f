"""``attnpatterns compare``: pattern types of super-survivors vs the full model, with statistics and "
"figures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import OverwriteOpt, QuietOpt, fail
from attnpatterns.constants import MAP_KINDS

_TASK_PREFIX = re.compile(r"^[A-Za-z0-9_.+\-]+$")

FullOpt = Annotated[
    list[str],
    typer.Option(
        "--full",
        metavar="[TASK=]DIR",
        help="Classification table (`attnpatterns classify` output) of the fine-tuned full model.",
    ),
]
SurvivorsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--survivors",
        metavar="[TASK=]DIR",
        help="Classification table of the pruned fine-tuned model (extracted with the super-survivor head "
        "mask). Without it only the full model's heads are compared.",
    ),
]
MasksOpt = Annotated[
    list[str],
    typer.Option(
        "--survivor-masks",
        metavar="[TASK=]DIR",
        help="Output folder of `attnpatterns survivors` (or its survivors.json).",
    ),
]
PretrainedFullOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--pretrained-full",
        metavar="[TASK=]DIR",
        help="Classification table of the pretrained (not fine-tuned) full model.",
    ),
]
PretrainedSurvivorsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--pretrained-survivors",
        metavar="[TASK=]DIR",
        help="Classification table of the pretrained model with the super-survivor head mask.",
    ),
]

ROLES = ("full", "survivors_table", "survivors", "pretrained_full", "pretrained_survivors")
_OPTION_OF = {
    "full": "--full",
    "survivors_table": "--survivors",
    "survivors": "--survivor-masks",
    "pretrained_full": "--pretrained-full",
    "pretrained_survivors": "--pretrained-survivors",
}


def split_task(value: str) -> tuple[str | None, Path]:
    """``TASK=PATH`` -> (TASK, PATH); a plain path (or an existing path that contains '=') -> (None, PATH)."""
    if "=" in value and not Path(value).exists():
        name, rest = value.split("=", 1)
        if name and rest and _TASK_PREFIX.match(name):
            return name, Path(rest)
    return None, Path(value)


def group_by_task(values: dict[str, list[str]], task: str | None) -> dict[str | None, dict[str, Path]]:
    """Sort every role's ``[TASK=]PATH`` values into tasks. Unprefixed values belong to ``task`` (which may be
    None when there is only one task; its name is then taken from survivors.json)."""
    grouped: dict[str | None, dict[str, Path]] = {}
    for role, items in values.items():
        for item in items or []:
            name, path = split_task(item)
            name = name if name is not None else task
            slot = grouped.setdefault(name, {})
            if role in slot:
                where = f" for task {name!r}" if name else ""
                raise typer.BadParameter(
                    f"{_OPTION_OF[role]} was given twice{where}; prefix each value with its task (TASK=PATH)"
                )
            slot[role] = path
    if None in grouped and len(grouped) > 1:
        raise typer.BadParameter(
            "some paths name their task (TASK=PATH) and some do not; prefix every value, or give --task "
            "for the unprefixed ones"
        )
    for name, slot in grouped.items():
        label = f"task {name!r}" if name else "the task"
        for role in ("full", "survivors"):
            if role not in slot:
                raise typer.BadParameter(
                    f"{label} has no {_OPTION_OF[role]}; every task needs --full and --survivor-masks"
                )
    return grouped


def _kinds(text: Optional[str]) -> tuple[str, ...] | None:
    if text is None:
        return None
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in MAP_KINDS]
    if bad or not kinds:
        raise typer.BadParameter(f"choose from {', '.join(MAP_KINDS)} (comma-separated), not {text!r}")
    return kinds


def compare_command(
    full: FullOpt,
    survivor_masks: MasksOpt,
    survivors: SurvivorsOpt = None,
    pretrained_full: PretrainedFullOpt = None,
    pretrained_survivors: PretrainedSurvivorsOpt = None,
    task: Annotated[
        Optional[str],
        typer.Option(
            "--task",
            help="Task name for paths given without TASK= (default: the task named in survivors.json).",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write results and figures to.")
    ] = Path("runs/compare"),
    kinds: Annotated[
        Optional[str],
        typer.Option("--kind", help="raw, normed or raw,normed (default: every kind in all tables)."),
    ] = None,
    permutations: Annotated[
        int, typer.Option(help="Random relabellings of heads per permutation test.")
    ] = 10_000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of heads per interval.")] = 5_000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the bootstrap intervals.")] = 0.95,
    correction: Annotated[
        str, typer.Option(help="Multiple-comparison correction (statsmodels multipletests method, or none).")
    ] = "holm",
    seed: Annotated[int, typer.Option("--seed", help="Seed of every permutation and bootstrap.")] = 0,
    allow_different_examples: Annotated[
        bool, typer.Option(help="Compare tables made from different example sets (normally refused).")
    ] = False,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Write PNG and SVG figures.")
    ] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare the pattern types of super-survivor heads with the full model, per task and map kind.

    Every path option is repeatable: prefix each value with its task (--full sst2=DIR) to compare several
    tasks at once.

    Writes CSV tables (distributions with bootstrap intervals, tests, correlations, majority types, layers),
    comparison.json and, unless --no-figures, figures/*.png and *.svg.
    """
    from attnpatterns.analysis import (
        AnalysisInputError,
        CompareConfig,
        TaskInputs,
        check_task_inputs,
        compare,
        load_pattern_table,
        load_survivors,
        save_comparison,
    )
    from attnpatterns.analysis.compare import COMPARISON_RUN, FIGURES_DIR
    from attnpatterns.runfolder import RunExistsError, fingerprint, open_run_folder

    grouped = group_by_task(
        {
            "full": full,
            "survivors_table": survivors or [],
            "survivors": survivor_masks,
            "pretrained_full": pretrained_full or [],
            "pretrained_survivors": pretrained_survivors or [],
        },
        task,
    )
    try:
        config = CompareConfig(
            n_permutations=permutations,
            n_bootstrap=bootstrap,
            confidence_level=confidence,
            seed=seed,
            correction=correction,
            kinds=_kinds(kinds),
            require_same_examples=not allow_different_examples,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err))
    inputs_record = {str(name): {role: str(p) for role, p in slot.items()} for name, slot in grouped.items()}
    try:
        tasks = []
        for name, slot in grouped.items():
            surv = load_survivors(slot["survivors"])
            tables = {
                role: load_pattern_table(slot[role]) for role in ROLES if role != "survivors" and role in slot
            }
            tasks.append(TaskInputs(task=name or surv.task or "task", survivors=surv, **tables))
        for inputs in tasks:  # refuse mismatched inputs before anything is written
            check_task_inputs(inputs, config)
    except (AnalysisInputError, ValueError) as err:
        raise fail(str(err))
    signature = {"config": config.to_dict(), "inputs": inputs_record}
    try:
        folder = open_run_folder(output, COMPARISON_RUN, fingerprint(signature), overwrite)
    except RunExistsError as err:
        raise fail(str(err))
    if (output / FIGURES_DIR).is_dir():
        shutil.rmtree(output / FIGURES_DIR)  # this comparison's own figures: a --no-figures rerun must drop them
    folder.start(signature)
    try:
        result = compare(tasks, config)
        written = save_comparison(result, output, figures=figures)
    except (AnalysisInputError, ValueError) as err:
        raise fail(str(err))
    folder.finish(tasks=result.task_names)
    if quiet:
        return
    for note in result.notes:
        typer.secho(f"note: {note}", err=True, fg=typer.colors.YELLOW)
    typer.echo(result.summary())
    typer.echo(
        f"wrote {len(written['tables'])} tables and {len(written['figures'])} figure files -> {output}"
    )


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
