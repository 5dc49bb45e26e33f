"""``attnpatterns verify``: check an extraction run's shards against the sizes and checksums recorded when written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnpatterns.cli.options import fail

#: Exit status when the run is damaged (2 stays for bad arguments, such as a folder that is not a run).
DAMAGED_EXIT = 1


def verify(run_dir: Annotated[Path, typer.Argument(help="Extraction run folder (written by `extract -o`).")]) -> None:
    """Check every shard of an extraction run: size, sha256, and that it holds its examples' maps.

    Exit status 1 names the damaged shards; rerunning the same `attnpatterns extract` command repairs them.
    """
    from attnpatterns.extraction import RunError, open_run

    try:
        result = open_run(run_dir).verify()
    except RunError as err:
        raise fail(str(err))
    if not result.ok:
        raise fail(result.summary(), code=DAMAGED_EXIT)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
