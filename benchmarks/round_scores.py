"""How the pattern classifier does on one annotation round's maps, against the rest of the corpus.

A round that adds maps chosen where the classifier hesitates (``build-corpus --uncertain``) raises two questions that
the corpus alone answers (the held-out test set is not read):

1. ``--predictions``: in the out-of-fold predictions of a rebuild's cross-validation (``DIR/cv_predictions.csv``,
   written by ``rebuild_defaults`` or ``attnpatterns train -o DIR``), macro-F1 and Cohen's κ over the maps whose id
   holds ``--match`` (or is listed in ``--ids FILE``, one id per line, for a re-look at scattered maps) and over the
   others. The others are the maps an earlier checkpoint's cross-validation scored, so
   this is the like-for-like comparison with it.
2. ``--checkpoint``: a checkpoint that never saw the round scored on its maps (the corpus's effective labels), e.g.
   the one that chose them.

Run:  uv run --locked python benchmarks/round_scores.py --kind normed --match=-r8- \\
          --predictions runs/classifier-defaults/normed/cv_predictions.csv --checkpoint /tmp/before-normed
      uv run --locked python benchmarks/round_scores.py --kind normed --ids relook_ids.txt --predictions ...
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sklearn.metrics import cohen_kappa_score, f1_score

from attnpatterns.constants import PATTERN_TYPES


def scores(labels: list[str], predicted: list[str]) -> str:
    if not labels:
        return "no maps"
    macro = f1_score(labels, predicted, average="macro", labels=list(PATTERN_TYPES), zero_division=0)
    accuracy = sum(a == b for a, b in zip(labels, predicted)) / len(labels)
    return (f"n={len(labels)}  macro-F1 {macro:.3f}  Cohen's kappa {cohen_kappa_score(labels, predicted):.3f}  "
            f"accuracy {accuracy:.3f}")


def split_predictions(path: Path, in_round) -> dict[str, tuple[list[str], list[str]]]:
    """(labels, predictions) of the out-of-fold rows whose map id ``in_round(id)`` accepts, and of the rest."""
    parts = {"round": ([], []), "rest": ([], [])}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            labels, predicted = parts["round" if in_round(row["name"]) else "rest"]
            labels.append(row["label"])
            predicted.append(row["predicted"])
    return parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", required=True, choices=("raw", "normed"))
    marks = parser.add_mutually_exclusive_group(required=True)
    marks.add_argument("--match", help="part of the map id that marks the round, e.g. --match=-r8- (with =: it starts "
                       "with -)")
    marks.add_argument("--ids", type=Path, help="a file of the round's map ids, one per line")
    parser.add_argument("--predictions", type=Path, help="cv_predictions.csv of a cross-validation")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint to score on the round's maps")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: annotations/)")
    args = parser.parse_args(argv)
    if args.predictions is None and args.checkpoint is None:
        parser.error("give --predictions, --checkpoint or both")
    if args.ids is not None:
        ids = set(args.ids.read_text(encoding="utf-8").split())
        in_round, what = ids.__contains__, f"the {len(ids)} maps of {args.ids}"
    else:
        in_round, what = (lambda name: args.match in name), f"maps with {args.match!r}"
    if args.predictions is not None:
        parts = split_predictions(args.predictions, in_round)
        print(f"out of fold ({args.predictions}), {what}: {scores(*parts['round'])}")
        print(f"out of fold ({args.predictions}), the other maps:  {scores(*parts['rest'])}")
    if args.checkpoint is not None:
        from attnpatterns.annotation.corpus import load_corpus
        from attnpatterns.patterns.checkpoint import load_checkpoint

        kw = {"kind": args.kind} if args.corpus is None else {"root": args.corpus, "kind": args.kind}
        maps = [m for m in load_corpus(**kw) if in_round(m.map_id)]
        if not maps:
            raise SystemExit(f"no labelled {args.kind} map among {what}")
        predicted = load_checkpoint(args.checkpoint, kind=args.kind).predict(
            [m.array for m in maps], kind=args.kind, segments=[m.segment_ids for m in maps])
        print(f"{args.checkpoint} on {what}: {scores([m.label for m in maps], predicted)}")


if __name__ == "__main__":
    main()
