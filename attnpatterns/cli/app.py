"""The Typer application and its command registry.

Every command lives in its own module of this package and exposes ``register(app)``. Adding a command is one line
in :data:`COMMAND_MODULES`; modules are imported lazily at start-up so that ``import attnpatterns`` stays cheap.
"""

from __future__ import annotations

import importlib

import typer

#: Command modules (under ``attnpatterns.cli``), in the order their commands appear in ``--help``.
COMMAND_MODULES: list[str] = [
    "annotate",
    "extract",
    "verify",
    "train",
    "evaluate",
    "classify",
    "finetune",
    "prune",
    "survivors",
    "compare",
    "report",
    "pipeline",
]

app = typer.Typer(
    name="attnpatterns",
    help=(
        "Study the self-attention patterns of BERT-family models and how pruning changes them.\n\n"
        "Extract raw and norm-weighted attention maps, prune fine-tuned models, classify maps into the five "
        "pattern types of Kovaleva et al. (2019), and compare super-survivor heads with the full model."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"attnpatterns.cli.{name}")
        module.register(app)


_register_all()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
