"""``attnpatterns report``: one self-contained HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import OverwriteOpt, QuietOpt, fail

#: Written into every report so that a rerun may replace its own earlier report without --overwrite.
GENERATOR_MARK = 'name="generator" content="attnpatterns report"'


def report_command(
    rundir: Annotated[
        Path,
        typer.Argument(
            help="Run folder holding the output of `attnpatterns compare` (found by its "
            "comparison.json, at any depth) and, optionally, pruning runs (pruning_log.json)."
        ),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="HTML file to write (default: RUNDIR/report.html)."),
    ] = None,
    title: Annotated[Optional[str], typer.Option(help="Title of the report.")] = None,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Embed the figures.")] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML report of a run: pruning, survivors, distributions, tests, figures."""
    from attnpatterns.analysis import AnalysisInputError, report_from_run
    from attnpatterns.constants import REPORT_FILE

    output = output or rundir / REPORT_FILE
    if output.suffix.lower() not in (".html", ".htm"):
        raise fail(f"--output must end in .html, not {output.name!r}")
    if output.exists() and not overwrite:
        head = output.read_text(encoding="utf-8", errors="replace")[:2000] if output.is_file() else ""
        if GENERATOR_MARK not in head:
            raise fail(
                f"{output} exists and is not an attnpatterns report; choose another --output or "
                "pass --overwrite"
            )
    try:
        html = report_from_run(rundir, title=title, figures=figures)
    except (AnalysisInputError, ValueError) as err:
        raise fail(str(err))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    if not quiet:
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
