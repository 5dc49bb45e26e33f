"""Out-of-fold agreement of the pattern classifier with the corpus labels, by text source and map length.

Reads the out-of-fold predictions that ``rebuild_defaults`` (or ``attnpatterns train -o DIR``) writes to
``DIR/cv_predictions.csv`` (grouped 5-fold cross-validation on ``annotations/`` only; the held-out test set is not
read) and the token count of every map from ``annotations/maps.jsonl``, and prints Cohen's κ and accuracy for: the
maps of the built-in texts, those of the round-6 texts (other genres, up to 124 tokens; text ids ``r6-…``), and the
round-6 maps of at most 64 tokens and of more. The corpus had no map over 64 tokens before round 6, so this is where
a weakness on long maps shows without looking at the test set.

Run:  uv run python -m attnpatterns.patterns.rebuild_defaults     # once, writes runs/classifier-defaults/KIND/
      uv run python benchmarks/cv_by_length.py [--runs runs/classifier-defaults]
      uv run python benchmarks/cv_by_length.py --predictions runs/cv-grid/*.csv   # the files cv_grid.py writes
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

LONG = 64  #: the longest map of the corpus before round 6
SHORT = 15  #: maps of at most this many tokens (with [CLS]/[SEP]) form a group of their own


def token_counts(corpus: Path) -> dict[str, int]:
    """Map id -> token count, from the corpus's ``maps.jsonl``."""
    counts = {}
    with open(corpus / "maps.jsonl", encoding="utf-8") as handle:
        for line in handle:
            meta = json.loads(line)
            counts[meta["map_id"]] = int(meta["n_tokens"])
    return counts


def length_groups(names: list[str], tokens: dict[str, int]) -> dict[str, list[int]]:
    """Positions of the maps of the built-in texts, of the round-6 texts, of the round-6 maps up to and over
    :data:`LONG` tokens, and of all maps of at most :data:`SHORT` tokens (empty groups left out)."""
    r6 = ["-r6-" in n for n in names]
    groups = {
        "built-in texts": [i for i, n in enumerate(names) if not r6[i]],
        "round-6 texts": [i for i, n in enumerate(names) if r6[i]],
        f"round-6, ≤ {LONG} tokens": [i for i, n in enumerate(names) if r6[i] and tokens[n] <= LONG],
        f"round-6, > {LONG} tokens": [i for i, n in enumerate(names) if r6[i] and tokens[n] > LONG],
        f"all, ≤ {SHORT} tokens": [i for i, n in enumerate(names) if tokens[n] <= SHORT],
    }
    return {name: idx for name, idx in groups.items() if idx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/classifier-defaults"),
                        help="Folder with one training run per kind (KIND/cv_predictions.csv).")
    parser.add_argument("--corpus", type=Path, default=Path("annotations"), help="Corpus folder (maps.jsonl).")
    parser.add_argument("--predictions", type=Path, nargs="+",
                        help="Out-of-fold prediction files to read instead of RUNS/KIND/cv_predictions.csv "
                             "(e.g. those cv_grid.py writes); each is reported under its file name.")
    args = parser.parse_args()

    from sklearn.metrics import cohen_kappa_score

    tokens = token_counts(args.corpus)
    if args.predictions:
        sources = [(path.stem, path) for path in args.predictions]
    else:
        sources = [(kind, args.runs / kind / "cv_predictions.csv") for kind in ("raw", "normed")]
    print("| predictions | maps | n | Cohen's κ | accuracy |\n| --- | --- | --- | --- | --- |")
    for kind, path in sources:
        if not path.is_file():
            how = ("rerun cv_grid.py" if args.predictions
                   else "run `uv run python -m attnpatterns.patterns.rebuild_defaults`")
            raise SystemExit(f"{path} is missing: {how} first.")
        with open(path, encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r["name"] in tokens]
        for name, idx in length_groups([r["name"] for r in rows], tokens).items():
            truth, pred = [rows[i]["label"] for i in idx], [rows[i]["predicted"] for i in idx]
            accuracy = sum(t == p for t, p in zip(truth, pred)) / len(idx)
            print(f"| {kind} | {name} | {len(idx)} | {cohen_kappa_score(truth, pred):.3f} | {accuracy:.3f} |")


if __name__ == "__main__":
    main()
