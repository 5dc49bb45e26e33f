"""Agreement between the first and the independent second labelling pass: Cohen's kappa and the confusion matrix.

For every map with a second-pass label, the pair compared is (latest ``first``-pass label, latest ``second``-pass
label), both ignoring retracted rows; adjudication rows do not enter (they come after the comparison). Results
are given per map kind and over all maps. ``macro_f1`` scores the second pass against the first as if it were a
classifier (macro average over the types either pass used): the ceiling a pattern classifier's macro-F1 can be
compared with. :func:`label_counts` gives the per-type counts of effective labels that
the corpus README reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.annotation.corpus import LabelRow, effective_label_rows
from attnpatterns.annotation.selection import disagreements, last_rows_by_pass
from attnpatterns.constants import HEAD_KINDS, PATTERN_TYPES

#: File written by ``attnpatterns annotate agreement`` (into the corpus by default).
AGREEMENT_FILE = "agreement.json"


@dataclass
class PassAgreement:
    """Agreement of the two passes over one set of maps; ``confusion[i][j]`` = first says i, second says j."""

    scope: str
    n: int
    kappa: float | None
    observed: float | None
    confusion: list[list[int]] = field(default_factory=list)
    open_disagreements: int = 0
    macro_f1: float | None = None

    def to_dict(self) -> dict:
        return {"scope": self.scope, "n": self.n, "kappa": self.kappa, "observed_agreement": self.observed,
                "macro_f1_second_vs_first": self.macro_f1,
                "labels": list(PATTERN_TYPES), "confusion_first_rows_second_cols": self.confusion,
                "open_disagreements": self.open_disagreements}

    def confusion_markdown(self) -> str:
        short = {"vertical": "V", "diagonal": "D", "vertical+diagonal": "V+D", "block": "B", "heterogeneous": "H"}
        head = "| first \\ second | " + " | ".join(short[t] for t in PATTERN_TYPES) + " |"
        sep = "|---" * (len(PATTERN_TYPES) + 1) + "|"
        body = [f"| {t} | " + " | ".join(str(v) for v in row) + " |" for t, row in zip(PATTERN_TYPES, self.confusion)]
        return "\n".join([head, sep, *body])


def pass_pairs(rows: Sequence[LabelRow]) -> dict[str, tuple[str, str]]:
    """``{map_id: (first label, second label)}`` for maps that have both."""
    first, second = last_rows_by_pass(rows, "first"), last_rows_by_pass(rows, "second")
    return {m: (first[m].label, s.label) for m, s in second.items() if m in first}


def _agreement(scope: str, pairs: list[tuple[str, str]], open_cases: int) -> PassAgreement:
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

    if not pairs:
        return PassAgreement(scope, 0, None, None, np.zeros((5, 5), int).tolist(), open_cases)
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    cm = confusion_matrix(a, b, labels=list(PATTERN_TYPES))
    observed = float(np.trace(cm) / cm.sum())
    if len(set(a) | set(b)) < 2:  # one label only: kappa is undefined (0/0); agreement is perfect
        kappa = 1.0
    else:
        kappa = float(cohen_kappa_score(a, b, labels=list(PATTERN_TYPES)))
    used = [t for t in PATTERN_TYPES if t in set(a) | set(b)]
    macro_f1 = float(f1_score(a, b, labels=used, average="macro", zero_division=0))
    return PassAgreement(scope, len(pairs), kappa, observed, cm.tolist(), open_cases, macro_f1)


def pass_agreement(rows: Sequence[LabelRow], index: Sequence[Mapping]) -> dict[str, PassAgreement]:
    """Agreement per kind (``raw``, ``normed``) and over ``all`` maps."""
    kind_of = {m["map_id"]: m["kind"] for m in index}
    pairs = pass_pairs(rows)
    open_cases = disagreements(rows)
    out = {}
    for scope in (*HEAD_KINDS, "all"):  # the annotated kinds
        ids = [m for m in pairs if scope == "all" or kind_of.get(m) == scope]
        out[scope] = _agreement(scope, [pairs[m] for m in ids], sum(1 for m in open_cases if m in ids))
    return out


def label_counts(rows: Sequence[LabelRow], index: Sequence[Mapping]) -> dict[str, dict[str, int]]:
    """``{kind: {type: n, ..., "total": n, "unlabelled": n}}`` of effective labels."""
    labels = effective_label_rows(rows)
    out: dict[str, dict[str, int]] = {}
    for kind in HEAD_KINDS:  # the annotated kinds
        ids = [m["map_id"] for m in index if m["kind"] == kind]
        counts = {t: sum(1 for m in ids if m in labels and labels[m].label == t) for t in PATTERN_TYPES}
        counts["total"] = sum(counts.values())
        counts["unlabelled"] = len(ids) - counts["total"]
        out[kind] = counts
    return out


def save_agreement(result: Mapping[str, PassAgreement], folder: str | Path) -> Path:
    """Write ``result`` (scope -> :class:`PassAgreement`) to ``folder/agreement.json`` atomically; return the path."""
    from attnpatterns.runfolder import write_json

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; give --output a folder for {AGREEMENT_FILE}.")
    path = folder / AGREEMENT_FILE
    if path.exists() and not _is_agreement_file(path):
        raise FileExistsError(f"{path} exists and is not an agreement file written by attnpatterns; nothing was "
                              "written. Choose another --output folder.")
    write_json(path, {scope: a.to_dict() for scope, a in result.items()})
    return path


def _is_agreement_file(path: Path) -> bool:
    """Whether ``path`` holds what :func:`save_agreement` writes (scope -> {scope, n, kappa, ...}): only such a file
    is replaced."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and all(isinstance(v, dict) and {"scope", "n", "kappa"} <= set(v)
                                          for v in data.values())


def agreement_text(result: Mapping[str, PassAgreement]) -> str:
    """Per scope: n, Cohen's kappa, observed agreement, macro-F1 second vs first, open disagreements, confusion."""
    blocks = []
    for scope, a in result.items():
        kappa = "n/a" if a.kappa is None else f"{a.kappa:.3f}"
        observed = "n/a" if a.observed is None else f"{a.observed:.1%}"
        macro_f1 = "n/a" if a.macro_f1 is None else f"{a.macro_f1:.3f}"
        block = (f"{scope}: n={a.n}  Cohen's kappa={kappa}  observed agreement={observed}  "
                 f"macro-F1 second vs first={macro_f1}  open disagreements={a.open_disagreements}")
        blocks.append(block + ("\n" + a.confusion_markdown() if a.n else ""))
    return "\n\n".join(blocks)
