"""Cross-validate the pattern classifier with another pooling grid, and report κ by text source and map length.

Every map is pooled to a ``grid`` x ``grid`` input (``PreprocessConfig.grid``, default 32) before the CNN and the
forest see it. On a long map (up to 128 tokens) a one-token ``[CLS]`` column then shares its grid cells with three
other tokens; this script measures, on the annotated corpus alone (the held-out test set is not read), whether a finer
grid helps: grouped 5-fold cross-validation with the default settings except ``grid``, repeated with other splits
(``--repeats``; split r is seeded with 7 r, so split 1 is exactly the first split of ``rebuild_defaults``, while its
later splits also keep the augmentation seed at 0 and differ from these), then macro-F1 and Cohen's κ over all maps and κ for the maps of
the built-in texts and of the round-6 texts up to and over 64 tokens (as ``cv_by_length.py`` does for the shipped
checkpoints). With ``--grid 32 --repeats 1`` it reproduces the first split of ``rebuild_defaults``' report.

Run:  uv run python benchmarks/cv_grid.py --grid 64 [--kind raw] [--repeats 3] [--out runs/cv-grid]
The out-of-fold predictions of every split go to ``--out`` (git-ignored ``runs/``), so that ``cv_by_length.py
--predictions`` can break them down again.
Choose a grid by the mean over several splits: one split moves macro-F1 by about 0.01.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cv_by_length import length_groups, token_counts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=32, help="Pooling grid side (the shipped classifiers use 32).")
    parser.add_argument("--kind", default="raw", choices=("raw", "normed"))
    parser.add_argument("--size-statistic", action="store_true",
                        help="Append the map's size to the feature vector (PreprocessConfig.size_statistic).")
    parser.add_argument("--forest-method", default=None, choices=("random-forest", "gradient-boosting"),
                        help="The tree model mixed with the CNN (ModelConfig.forest_method; default: ModelConfig's).")
    parser.add_argument("--repeats", type=int, default=1, help="Cross-validation runs with other fold splits.")
    parser.add_argument("--corpus", type=Path, default=Path("annotations"), help="Corpus folder.")
    parser.add_argument("--out", type=Path, default=Path("runs/cv-grid"),
                        help="Folder for the out-of-fold predictions of every split "
                             "(KIND-gridG[-size]-splitR.csv, the columns of a training run's cv_predictions.csv).")
    args = parser.parse_args()

    import numpy as np
    from sklearn.metrics import cohen_kappa_score, f1_score

    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP
    from attnpatterns.patterns.io import load_labeled
    from attnpatterns.patterns.model import ModelConfig
    from attnpatterns.patterns.preprocess import PreprocessConfig, preprocess_maps
    from attnpatterns.patterns.train import REPEAT_SEED_STEP, TrainConfig, augmented_views, cross_validate_features

    start = time.perf_counter()
    data = load_labeled(args.corpus, "auto", args.kind, DEFAULT_LABEL_MAP)
    preprocess = PreprocessConfig(grid=args.grid, size_statistic=args.size_statistic)
    model = ModelConfig() if args.forest_method is None else ModelConfig(forest_method=args.forest_method)
    tag = (f"{args.kind}-grid{args.grid}" + ("-size" if args.size_statistic else "")
           + ("" if args.forest_method is None else f"-{args.forest_method}"))
    groups = length_groups(list(data.names), token_counts(args.corpus))
    groups.pop("round-6 texts", None)  # the two length groups say more
    y = np.asarray(data.y)
    feats = preprocess_maps(data.arrays, preprocess, names=data.names, segments=data.segments)
    print(f"{args.kind} maps, grid {args.grid}{', size statistic' if args.size_statistic else ''}, "
          f"{model.forest_method}, {len(y)} maps")
    for r in range(args.repeats):
        config = TrainConfig(allow_empty_classes=True, cv_repeats=1, robustness=False, seed=REPEAT_SEED_STEP * r)
        augmented = augmented_views(data, preprocess, config.augment, config.seed)
        cv = cross_validate_features(feats, data, preprocess, model, config, "cpu", augmented)
        pred = cv.probabilities.argmax(1)
        args.out.mkdir(parents=True, exist_ok=True)
        cv.predictions_frame().to_csv(args.out / f"{tag}-split{r + 1}.csv", index=False)
        parts = [f"split {r + 1}: macro-F1 {f1_score(y, pred, average='macro'):.3f}",
                 f"κ {cohen_kappa_score(y, pred):.3f}",
                 "parts " + ", ".join(f"{k} {v:.3f}" for k, v in cv.report.extra.get("member_macro_f1", {}).items())]
        for name, idx in groups.items():
            parts.append(f"{name} (n={len(idx)}) κ {cohen_kappa_score(y[idx], pred[idx]):.3f}")
        print("; ".join(parts), flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
