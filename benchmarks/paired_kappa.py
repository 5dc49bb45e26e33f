"""Compare two pattern classifiers on the same labelled maps: Cohen's κ of each and a paired bootstrap of the change.

A test set of 170 maps is small, so a change of κ between two checkpoints (say, before and after a rebuild) needs an
interval before it means anything. This script scores both checkpoints on the same maps, counts the maps whose
prediction changed, and resamples the maps with replacement (``--resamples`` times, seeded) to give the κ change with
a 95% percentile interval. It only scores: use it on the held-out test set only for checkpoints whose design is
already settled (``annotations/testset/README.md``).

Run:  git worktree add /tmp/before <commit>        # the checkpoint before the change
      uv run python benchmarks/paired_kappa.py --before /tmp/before/attnpatterns/patterns/checkpoints/raw \\
          --after attnpatterns/patterns/checkpoints/raw --data annotations/testset --kind raw
"""

from __future__ import annotations

import argparse
from pathlib import Path


def paired_bootstrap(y, before, after, resamples: int, seed: int) -> tuple[float, float, float]:
    """κ(after) − κ(before) on all maps, and the 2.5% and 97.5% percentiles over ``resamples`` resamples of the maps
    (the same resample for both classifiers)."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    y, before, after = np.asarray(y), np.asarray(before), np.asarray(after)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(cohen_kappa_score(y[idx], after[idx]) - cohen_kappa_score(y[idx], before[idx]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return cohen_kappa_score(y, after) - cohen_kappa_score(y, before), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="Checkpoint folder before the change.")
    parser.add_argument("--after", type=Path, required=True, help="Checkpoint folder after the change.")
    parser.add_argument("--data", type=Path, default=Path("annotations/testset"), help="Labelled maps (a corpus).")
    parser.add_argument("--kind", required=True, choices=("raw", "normed"))
    parser.add_argument("--resamples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sklearn.metrics import cohen_kappa_score, f1_score

    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP
    from attnpatterns.patterns.checkpoint import load_checkpoint
    from attnpatterns.patterns.io import load_labeled

    data = load_labeled(args.data, "auto", args.kind, DEFAULT_LABEL_MAP)
    preds = {}
    for name, path in (("before", args.before), ("after", args.after)):
        classifier = load_checkpoint(path)
        classifier.check_kind(args.kind, where=str(args.data))
        preds[name] = classifier.predict_proba(data.arrays, names=data.names, segments=data.segments).argmax(axis=1)
        print(f"{name}: {path} (grid {classifier.preprocess.grid}): κ {cohen_kappa_score(data.y, preds[name]):.3f}, "
              f"macro-F1 {f1_score(data.y, preds[name], average='macro'):.3f}")
    changed = int((preds["before"] != preds["after"]).sum())
    diff, low, high = paired_bootstrap(data.y, preds["before"], preds["after"], args.resamples, args.seed)
    print(f"{args.kind}, {len(data)} maps: {changed} predictions changed; κ change {diff:+.3f}, 95% interval "
          f"[{low:+.3f}, {high:+.3f}] ({args.resamples} paired resamples, seed {args.seed})")


if __name__ == "__main__":
    main()
