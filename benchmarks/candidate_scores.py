"""How well the pre-sorting scores find the rare pattern types, measured on the annotated corpus.

For each rare type (raw and normed ``block`` and ``vertical+diagonal``) it prints, side by side, the ROC AUC of the
type's heuristic score (:func:`attnpatterns.annotation.heuristics.heuristic_scores`) and of its candidate score
(:func:`~attnpatterns.annotation.heuristics.candidate_score`, what ``build-corpus --favour`` ranks by) against the
annotators' labels; then, from ``corpus_log.jsonl``, how the maps that ``--favour`` picked were labelled.

Run:  uv run python benchmarks/candidate_scores.py [--model all-MiniLM-L6-v2]
(``--model`` keeps the maps of one model, e.g. the pretrained MiniLM whose maps were labelled before any
favouring.)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Only the maps of this model (the corpus 'model' field).")
    parser.add_argument("--corpus", type=Path, default=None, help="Corpus folder (default: annotations/).")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from attnpatterns.annotation.corpus import DEFAULT_CORPUS_DIR, load_corpus
    from attnpatterns.annotation.heuristics import CANDIDATE_TYPES, candidate_score, heuristic_scores
    from attnpatterns.annotation.sampling import CORPUS_LOG_FILE
    from attnpatterns.constants import MAP_KINDS, PATTERN_TYPES

    root = args.corpus or Path(DEFAULT_CORPUS_DIR)
    print(f"ROC AUC against the annotators' labels ({args.model or 'all models'}):")
    print(f"{'kind':<7} {'type':<18} {'maps':>5} {'of type':>7} {'heuristic':>9} {'candidate':>9}")
    for kind in MAP_KINDS:
        maps = [m for m in load_corpus(root, kind=kind) if args.model is None or m.model == args.model]
        for pattern in CANDIDATE_TYPES:
            truth = [m.label == pattern for m in maps]
            if sum(truth) < 2 or all(truth):
                print(f"{kind:<7} {pattern:<18} {len(maps):>5} {sum(truth):>7}   (too few to score)")
                continue
            heuristic = [heuristic_scores(m.array, m.segment_ids)[pattern] for m in maps]
            candidate = [candidate_score(m.array, m.segment_ids, pattern) for m in maps]
            print(f"{kind:<7} {pattern:<18} {len(maps):>5} {sum(truth):>7} {roc_auc_score(truth, heuristic):>9.3f} "
                  f"{roc_auc_score(truth, candidate):>9.3f}")

    favoured: dict[str, str] = {}
    log = root / CORPUS_LOG_FILE
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            for added in json.loads(line).get("added", []):
                if added.get("favoured"):
                    favoured[added["map_id"]] = added["favoured"]
    if not favoured:
        return
    print("\nmaps picked by --favour, by the label the annotators gave them:")
    print(f"{'kind':<7} {'favoured as':<18} {'maps':>5}  " + "  ".join(PATTERN_TYPES))
    for kind in MAP_KINDS:
        labels = {m.map_id: m.label for m in load_corpus(root, kind=kind)}
        for pattern in CANDIDATE_TYPES:
            got = Counter(labels[m] for m, p in favoured.items() if p == pattern and m in labels)
            if got:
                print(f"{kind:<7} {pattern:<18} {sum(got.values()):>5}  "
                      + "  ".join(f"{t}={got[t]}" for t in PATTERN_TYPES))


if __name__ == "__main__":
    main()
