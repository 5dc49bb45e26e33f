"""Cross-validate the tree model alone (the gradient-boosted half of the pattern classifier) on the corpus: a quick
screen of feature families and boosting settings before a full run of the whole classifier.

Grouped, stratified 5-fold CV with the split seeds of ``train.py`` (0, 7, 14 for three splits), the classifier's
boosting settings (300 iterations, learning rate 0.05, class-balanced, no early stopping) unless changed, on the
feature vector of ``--kind``'s default preprocessing with optional feature families switched on or off. The held-out
test set is not read. Prints macro-F1 / Cohen's κ per split and their means. Each setting takes 2–3 minutes on 2
cores.

Run:  uv run python benchmarks/trees_cv.py --kind normed --set lone_column_statistics=false \
          --set lone_column_statistics=true --set band_statistics=true
      uv run python benchmarks/trees_cv.py --kind normed --boost max_iter=600 --boost class_weight=none
      uv run python benchmarks/trees_cv.py --kind normed --train-share 0.5 --train-share 0.75
Each ``--set`` (a PreprocessConfig field) and each ``--boost`` (a HistGradientBoostingClassifier argument) is one
setting to screen; with neither, the default is screened alone. Each ``--train-share S`` screens the default
settings trained on a random share S of each training fold's texts (whole texts, drawn per split with seed = the
split's number; the held-out folds are unchanged): a learning curve, to judge what more annotated maps would be worth.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace


def _value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pair(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), _value(value.strip())


def train_share(train, groups, share: float, rng):
    """The rows of ``train`` whose texts are in a random ``share`` of its texts (at least one text)."""
    import numpy as np

    texts = np.unique(groups[train])
    kept = rng.choice(texts, max(1, int(round(share * len(texts)))), replace=False)
    return train[np.isin(groups[train], kept)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="normed", choices=("raw", "normed"))
    parser.add_argument("--set", type=_pair, action="append", default=[], dest="sets",
                        help="FIELD=VALUE of PreprocessConfig: one feature setting to screen (repeatable)")
    parser.add_argument("--boost", type=_pair, action="append", default=[],
                        help="ARG=VALUE of HistGradientBoostingClassifier: one boosting setting (repeatable)")
    parser.add_argument("--train-share", type=float, action="append", default=[],
                        help="train on this share (0-1] of each training fold's texts: one learning-curve point "
                             "(repeatable)")
    parser.add_argument("--splits", type=int, default=3, help="fold splits (seeds 0, 7, 14, ...)")
    parser.add_argument("--corpus", default="annotations")
    args = parser.parse_args()

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import cohen_kappa_score, f1_score

    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.patterns.preprocess import default_preprocess, preprocess_maps
    from attnpatterns.patterns.train import REPEAT_SEED_STEP, _grouped_splits

    data = load_labeled(args.corpus, "auto", args.kind, DEFAULT_LABEL_MAP)
    y = np.asarray(data.y)
    base = default_preprocess(args.kind)
    if any(not 0.0 < share <= 1.0 for share in args.train_share):
        parser.error("--train-share takes a share of the training texts in (0, 1], e.g. 0.5")
    settings = [(f"{k}={v}", replace(base, **{k: v}), {}, 1.0) for k, v in args.sets]
    settings += [(f"boost {k}={v}", base, {k: v}, 1.0) for k, v in args.boost]
    settings += [(f"train share {share:g}", base, {}, share) for share in args.train_share]
    settings = settings or [("default", base, {}, 1.0)]
    groups = np.asarray(data.groups)
    print(f"{args.kind} maps: {len(y)}; default preprocessing {base.to_dict()}")
    vectors = {}
    for name, preprocess, boost, share in settings:
        start = time.perf_counter()
        if preprocess not in vectors:
            vectors[preprocess] = preprocess_maps(data.arrays, preprocess, names=data.names,
                                                  segments=data.segments).vectors.numpy()
        x = vectors[preprocess]
        scores = []
        for split in range(args.splits):
            pred = np.zeros_like(y)
            rng = np.random.default_rng(split)
            for train, test in _grouped_splits(y, data.groups, 5, REPEAT_SEED_STEP * split):
                if share < 1.0:
                    train = train_share(train, groups, share, rng)
                settings_ = {"max_iter": 300, "learning_rate": 0.05, "class_weight": "balanced",
                             "early_stopping": False, "random_state": 0, **boost}
                pred[test] = HistGradientBoostingClassifier(**settings_).fit(x[train], y[train]).predict(x[test])
            scores.append((f1_score(y, pred, average="macro"), cohen_kappa_score(y, pred)))
        f1, kappa = np.mean(scores, axis=0)
        print(f"{name:40s} " + " ".join(f"{f:.3f}/{k:.3f}" for f, k in scores)
              + f"  mean macro-F1 {f1:.4f}, κ {kappa:.4f}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
