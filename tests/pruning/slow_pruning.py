"""Structured pruning of the toy task that can pause after a step: the process ``test_resume`` kills midway.

``python -m tests.pruning.slow_pruning MODEL OUT [PAUSE_AFTER]`` prunes the tiny classifier in ``MODEL`` into
``OUT`` and, when ``PAUSE_AFTER`` is given, sleeps in the progress callback once that step is reported (and so
saved), leaving the test time to kill it there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from attnpatterns.models import load_model
from attnpatterns.pruning.prune import run_pruning
from attnpatterns.pruning.structured import StructuredConfig
from tests.pruning.conftest import make_task

CONFIG = StructuredConfig(head_fraction=0.25, max_length=16)
TASK = make_task(n_train=8, n_dev=16)


def prune(model: Path | str, out: Path | str, progress=None):
    return run_pruning(load_model(str(model), head="classification"), TASK, out, config=CONFIG, progress=progress)


def main(argv: list[str]) -> None:
    model, out, *pause = argv
    pause_after = int(pause[0]) if pause else None

    def progress(step: dict) -> None:
        if step["step"] == pause_after:
            time.sleep(120)  # the test kills us long before this ends

    prune(model, out, progress)


if __name__ == "__main__":
    main(sys.argv[1:])
