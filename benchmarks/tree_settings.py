"""Cross-validate the tree model alone with other gradient-boosting settings, and with resized training copies.

The shipped classifiers mix the CNN ensemble with gradient-boosted trees over the feature vector
(``ModelConfig.forest_method``); on the project's corpus the mix scores within ±0.001 of the trees alone, so the trees'
settings are compared here without the CNN, which makes a run minutes instead of hours. On the annotated corpus alone
(the held-out test set is not read): grouped 5-fold cross-validation with the split seeds of ``rebuild_defaults``
(split r seeded with 7 r, fold f's trees with 7 r + f), each setting fitted with scikit-learn's
``HistGradientBoostingClassifier`` on the same folds, then macro-F1 and Cohen's κ over the out-of-fold predictions.

Settings (``--settings``, comma-separated): ``shipped`` (class-balanced, 300 iterations, learning rate 0.05, 31
leaves: what ``BoostedTrees.fit`` uses), ``no-weights``, ``sqrt-weights`` (sample weights 1 / √(class count)),
``leaf15-l2`` (15 leaves, L2 1.0, 400 iterations), ``augmented`` (shipped settings, fitted also on one resized copy
of every training map, as ``ModelConfig(forest_augmented=True)`` does with ``TrainConfig.augment=1``).
``--agreement`` also reports, per setting, the share of maps whose label is unchanged when the held-out map is
replaced by another randomly resized copy of it (seed 12345): how steady the trees are under resizing.

Run:  uv run python benchmarks/tree_settings.py --kind normed --settings shipped,no-weights,sqrt-weights,leaf15-l2
      uv run python benchmarks/tree_settings.py --kind normed --settings shipped,augmented --agreement
One split moves macro-F1 by about 0.01: compare settings on every split, not on one.
"""

from __future__ import annotations

import argparse
import time

SHIPPED = {"max_iter": 300, "learning_rate": 0.05, "class_weight": "balanced"}
SETTINGS = {
    "shipped": SHIPPED,
    "no-weights": {"max_iter": 300, "learning_rate": 0.05},
    "sqrt-weights": {"max_iter": 300, "learning_rate": 0.05},  # sample weights set in fit_setting
    "leaf15-l2": {**SHIPPED, "max_iter": 400, "max_leaf_nodes": 15, "l2_regularization": 1.0},
    "augmented": SHIPPED,  # training rows doubled in fit_setting
}


def fit_setting(name: str, x, y, copies, seed: int):
    """The fitted scikit-learn model of setting ``name`` on training rows ``x``, labels ``y`` (and ``copies``: the
    resized views' rows, used by ``augmented`` only)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    weights = None
    if name == "sqrt-weights":
        per_class = 1 / np.sqrt(np.maximum(np.bincount(y, minlength=5), 1).astype(float))
        weights = per_class[y] / per_class[y].mean()
    if name == "augmented":
        x, y = np.concatenate([x, copies]), np.concatenate([y, y])
    model = HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **SETTINGS[name])
    return model.fit(x, y, sample_weight=weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="normed", choices=("raw", "normed"))
    parser.add_argument("--settings", default="shipped,no-weights,sqrt-weights,leaf15-l2",
                        help=f"Comma-separated, from: {', '.join(SETTINGS)}.")
    parser.add_argument("--repeats", type=int, default=3, help="Cross-validation runs with other fold splits.")
    parser.add_argument("--agreement", action="store_true", help="Also measure label agreement under resizing.")
    args = parser.parse_args()
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")

    import numpy as np
    from sklearn.metrics import cohen_kappa_score, f1_score

    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.patterns.preprocess import default_preprocess, preprocess_maps
    from attnpatterns.patterns.train import REPEAT_SEED_STEP, _grouped_splits, augmented_views

    data = load_labeled("annotations", "auto", args.kind, DEFAULT_LABEL_MAP)
    preprocess = default_preprocess(args.kind)
    x = preprocess_maps(data.arrays, preprocess, names=data.names, segments=data.segments).vectors.numpy()
    y = np.asarray(data.y)
    copies = augmented_views(data, preprocess, 1, 0)[0].vectors.numpy() if "augmented" in names else None
    resized = augmented_views(data, preprocess, 1, 12345)[0].vectors.numpy() if args.agreement else None
    print(f"{len(y)} {args.kind} maps; trees alone, grouped 5-fold CV, {args.repeats} split(s)", flush=True)
    for r in range(args.repeats):
        seed, start = REPEAT_SEED_STEP * r, time.perf_counter()
        probs = {n: np.zeros((len(y), 5)) for n in names}
        probs_resized = {n: np.zeros((len(y), 5)) for n in names}
        for fold, (train, test) in enumerate(_grouped_splits(y, data.groups, 5, seed)):
            for name in names:
                model = fit_setting(name, x[train], y[train], None if copies is None else copies[train], seed + fold)
                for store, rows in ((probs, x), (probs_resized, resized)):
                    if rows is not None:
                        store[name][np.ix_(test, model.classes_)] = model.predict_proba(rows[test])
        parts = []
        for name in names:
            predicted = probs[name].argmax(1)
            part = (f"{name} macro-F1 {f1_score(y, predicted, average='macro'):.3f} "
                    f"kappa {cohen_kappa_score(y, predicted):.3f}")
            if args.agreement:
                part += f" unchanged-by-resizing {np.mean(predicted == probs_resized[name].argmax(1)):.3f}"
            parts.append(part)
        print(f"split {r + 1} ({time.perf_counter() - start:.0f} s): " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
