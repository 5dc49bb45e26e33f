"""Rebuild the shipped default checkpoints from the project's annotated corpus (``annotations/``).

Run ``uv run python -m attnpatterns.patterns.rebuild_defaults [--device cuda] [--kind raw]`` from the repository
root (``--kind``, repeatable: only those kinds; default all). For each kind it does what ``attnpatterns train --kind
KIND --install-default --allow-empty-classes --cv-repeats 3 -o runs/classifier-defaults/KIND --overwrite`` does
(:func:`attnpatterns.patterns.train.train_run`: grouped 5-fold cross-validation, run three times with other fold
splits, then the final fit with the default settings and seed 0; each kind's preprocessing is its entry in
:data:`attnpatterns.patterns.preprocess.DEFAULT_PREPROCESS`) and installs the checkpoint, with its
cross-validation report, into ``attnpatterns/patterns/checkpoints/KIND/``. On the project's corpus one 5-fold split
moves the raw macro-F1 by about 0.01 from one seed to the next, so the report gives the three runs and their mean.
``allow_empty_classes`` is there so that a corpus of a model that does not produce every type still trains (the
project's corpus has all five types in both kinds; ``annotations/README.md`` gives the counts); the report lists the
support of every type.

Then it scores each new checkpoint on the held-out test set (``annotations/testset``, never used for training or
model choice), as ``attnpatterns evaluate default annotations/testset --kind KIND -o
attnpatterns/patterns/checkpoints/KIND/testset`` does: per-class F1, macro-F1, Cohen's κ and the confusion matrix.
The report's title names the checkpoint relative to the repository root. ``--score-only`` skips the training and
only rewrites the test-set reports of the shipped checkpoints.
"""

from __future__ import annotations

import argparse

from attnpatterns.constants import HEAD_KINDS

RUNS_DIR = "runs/classifier-defaults"
CV_REPEATS = 3
#: The held-out test set (see its README): scored after every rebuild, never trained on.
TESTSET_DIR = "annotations/testset"


def main(argv: list[str] | None = None) -> None:
    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP
    from attnpatterns.patterns.checkpoint import TESTSET_REPORT_DIR, default_checkpoint_path, load_default_checkpoint
    from attnpatterns.patterns.evaluate import (
        evaluate_classifier,
        open_evaluation_folder,
        report_title,
        save_evaluation,
    )
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.patterns.train import TrainConfig, train_run
    from attnpatterns.runtime import resolve_device

    parser = argparse.ArgumentParser(description="Rebuild the shipped pattern classifiers and score them.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--kind", action="append", choices=HEAD_KINDS,
                        help="rebuild only this kind (repeat for several; default: every kind)")
    parser.add_argument("--score-only", action="store_true",
                        help="do not retrain: score the shipped checkpoints on the test set again and rewrite their "
                             "test-set reports (e.g. after the report format changed)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    for kind in args.kind or HEAD_KINDS:  # the classifiers are per-head; layer-level kinds borrow them
        if not args.score_only:
            train_run(f"{RUNS_DIR}/{kind}", kind,
                      config=TrainConfig(allow_empty_classes=True, cv_repeats=CV_REPEATS),
                      device=device, overwrite=True, install_default=True, log=print)
        classifier = load_default_checkpoint(kind, device=device)
        dataset = load_labeled(TESTSET_DIR, "auto", kind, DEFAULT_LABEL_MAP)
        folder = open_evaluation_folder(default_checkpoint_path(kind) / TESTSET_REPORT_DIR, classifier, TESTSET_DIR,
                                        kind=kind, overwrite=True, dataset=dataset)
        report = evaluate_classifier(classifier, dataset)
        report.title = report_title(classifier, dataset.source, kind)
        save_evaluation(report, folder, "default", TESTSET_DIR, kind)
        print(report.to_text())
        print(f"held-out test set: {folder.path}")


if __name__ == "__main__":  # pragma: no cover
    main()
