"""The Typer application and its command registry.

Every command lives in its own module of this package and exposes ``register(app)``. Adding a command is one line
in :data:`COMMAND_MODULES`; modules are imported lazily at start-up so that ``import attnpatterns`` stays cheap.
"""

from __future__ import annotations

import importlib
import os

import typer

#: How long (in busy-wait iterations) an idle OpenMP worker thread of torch spins before it sleeps; set before any
#: command imports torch, unless the user set it or a wait policy. GNU OpenMP spins 300,000 iterations by default:
#: when another job shares the cores, the threads of each parallel region then wait on a peer that is not running,
#: and every op crawls (beside a 2-thread job the default pipeline run took 363.5 s with the code of 3cb428e, which
#: set nothing, and 197.7 s with main at 1,000). Too short a spin costs the idle case instead: the threads sleep
#: between ops and must be woken. The default pipeline run on 2 cores (benchmarks/RESULTS.md, "Main job", session
#: 13): 10,000 took 109.1 and 107.4 s idle, 236.3 and 224.1 s beside a 2-thread job; 1,000 took 117.0 and 117.5 s
#: idle, 205.2 and 202.5 s loaded.
#: It changes no result: the number of threads and how work is split among them stay the same.
GOMP_SPINCOUNT = "10000"
if "OMP_WAIT_POLICY" not in os.environ:  # an explicit wait policy is the user's choice: leave it alone
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)

#: glibc malloc settings (``mallopt``) the CLI makes before any command runs, unless the user set any of glibc's
#: ``MALLOC_*`` variables or ``GLIBC_TUNABLES``: blocks up to 32 MiB come from the heap instead of a fresh ``mmap``
#: each, and freed memory is kept for the next allocation instead of being handed back. By default glibc maps every
#: large tensor anew and touches its pages for the first time, millions of page faults in the default pipeline run.
#: It changes no result: only where memory comes from.
MALLOPT = {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 16 * 2**30, "M_TOP_PAD": 64 * 2**20}
_MALLOPT_PARAMS = {"M_TRIM_THRESHOLD": -1, "M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3}  # glibc's malloc.h


def keep_freed_memory(settings: dict[str, int] = MALLOPT) -> bool:
    """Apply :data:`MALLOPT` through glibc's ``mallopt``; False (nothing done) off glibc or where the user chose."""
    if any(k.startswith("MALLOC_") for k in os.environ) or "GLIBC_TUNABLES" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): its allocator keeps its own ways
        return False
    return all(mallopt(_MALLOPT_PARAMS[name], int(value)) == 1 for name, value in settings.items())


keep_freed_memory()

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
