"""Rebuild the shipped default checkpoints from the project's annotated corpus (``annotations/``).

Run ``uv run python -m attnpatterns.patterns.rebuild_defaults`` from the repository root. For each kind it runs
exactly ``attnpatterns train --kind KIND --install-default --allow-empty-classes --cv-repeats 3 -o
runs/classifier-defaults/KIND --overwrite`` (grouped 5-fold cross-validation, run three times with other fold splits,
then the final fit with the default settings and seed 0) and installs the checkpoint, with its cross-validation
report, into ``attnpatterns/patterns/checkpoints/KIND/``. On the project's corpus one 5-fold split moves the raw
macro-F1 by about 0.01 from one seed to the next, so the report gives the three runs and their mean.
``--allow-empty-classes`` is there so that a corpus of a model that does not produce every type still trains (the
project's corpus has all five types in both kinds; ``annotations/README.md`` gives the counts); the report lists the
support of every type. Extra arguments are passed on to every ``train`` call (for example ``--device cuda``).

Then it scores each new checkpoint on the held-out test set (``annotations/testset``, never used for training or
model choice) with ``attnpatterns evaluate default annotations/testset --kind KIND -o
attnpatterns/patterns/checkpoints/KIND/testset``: per-class F1, macro-F1, Cohen's κ and the confusion matrix.
"""

from __future__ import annotations

import sys

from attnpatterns.constants import HEAD_KINDS

RUNS_DIR = "runs/classifier-defaults"
CV_REPEATS = 3
#: The held-out test set (see its README): scored after every rebuild, never trained on.
TESTSET_DIR = "annotations/testset"


def main(argv: list[str] | None = None) -> None:
    from attnpatterns.cli.app import app
    from attnpatterns.patterns.checkpoint import TESTSET_REPORT_DIR, default_checkpoint_path

    extra = list(sys.argv[1:] if argv is None else argv)
    for kind in HEAD_KINDS:  # the classifiers are per-head; layer-level kinds borrow them
        args = ["train", "--kind", kind, "--install-default", "--allow-empty-classes", "--cv-repeats", str(CV_REPEATS),
                "-o", f"{RUNS_DIR}/{kind}", "--overwrite", *extra]
        app(args, standalone_mode=False)
        report = default_checkpoint_path(kind) / TESTSET_REPORT_DIR
        app(["evaluate", "default", TESTSET_DIR, "--kind", kind, "-o", str(report), "--overwrite"],
            standalone_mode=False)


if __name__ == "__main__":  # pragma: no cover
    main()
