"""Which maps still need a label from whom: the work queue of each labelling pass.

Shared by the notebook session and the sheet exporter so that both agree on what "done" means:

- ``first``: maps without an effective label (so reopening resumes where it stopped, whoever labelled the rest);
- ``second``: a seeded random fraction (default 20%) of the labelled maps of each kind, minus maps this annotator
  labelled in the first pass (the second look must be independent) and maps that already have a second-pass label
  (from anyone: one independent second look per map is what the agreement needs, and a growing corpus adds new
  maps to the sample without sending the old ones round again);
- ``adjudicated``: maps whose latest first-pass and second-pass labels disagree and that no adjudication row
  has settled since.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from attnpatterns.annotation.corpus import PASSES, RETRACTED, LabelRow, effective_label_rows

DEFAULT_SECOND_FRACTION = 0.2


def _rank(seed: int, map_id: str) -> str:
    """A per-map pseudo-random key, stable under the corpus growing (unlike shuffling a list)."""
    return hashlib.sha256(f"{seed}:{map_id}".encode()).hexdigest()


def last_rows_by_pass(rows: Sequence[LabelRow], pass_: str, annotator: str | None = None) -> dict[str, LabelRow]:
    """The last row per map of one pass (optionally of one annotator); maps whose last row is retracted are left out."""
    last: dict[str, LabelRow] = {}
    for row in rows:
        if row.pass_ == pass_ and (annotator is None or row.annotator == annotator):
            last[row.map_id] = row
    return {m: r for m, r in last.items() if r.label != RETRACTED}


def second_pass_sample(
    rows: Sequence[LabelRow], index: Sequence[Mapping], fraction: float = DEFAULT_SECOND_FRACTION, seed: int = 0
) -> list[str]:
    """A seeded random ``fraction`` of the labelled maps of each kind (rounded up), in index order.

    Maps are ranked by a hash of (seed, map_id), so the sample of a growing corpus keeps the maps it had (a map
    only leaves when lower-ranked new maps push it past the quota).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labelled = effective_label_rows(rows)
    chosen: set[str] = set()
    for kind in sorted({m["kind"] for m in index}):
        ids = [m["map_id"] for m in index if m["kind"] == kind and m["map_id"] in labelled]
        quota = math.ceil(fraction * len(ids))
        chosen.update(sorted(ids, key=lambda m: _rank(seed, m))[:quota])
    return [m["map_id"] for m in index if m["map_id"] in chosen]


def pending_map_ids(
    rows: Sequence[LabelRow],
    index: Sequence[Mapping],
    annotator: str,
    pass_: str = "first",
    kind: str | None = None,
    fraction: float = DEFAULT_SECOND_FRACTION,
    seed: int = 0,
) -> list[str]:
    """Ids of the maps (of ``kind``) that ``annotator`` should label in ``pass_``, in index order."""
    if pass_ not in PASSES:
        raise ValueError(f"pass {pass_!r} is not one of {', '.join(PASSES)}")
    index = [m for m in index if kind is None or m["kind"] == kind]
    if pass_ == "first":
        labelled = effective_label_rows(rows)
        return [m["map_id"] for m in index if m["map_id"] not in labelled]
    if pass_ == "second":
        first_by_me = {r.map_id for r in rows if r.pass_ != "second" and r.annotator == annotator}
        done = last_rows_by_pass(rows, "second")
        sample = second_pass_sample(rows, index, fraction, seed)
        return [m for m in sample if m not in first_by_me and m not in done]
    open_cases = disagreements(rows)
    return [m["map_id"] for m in index if m["map_id"] in open_cases]


def disagreements(rows: Sequence[LabelRow]) -> dict[str, tuple[str, str]]:
    """``{map_id: (first label, second label)}`` for maps whose passes disagree and that no later row settled.

    A map is settled when an ``adjudicated`` row comes after both its latest first and second rows.
    """
    pos: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        pos[(row.map_id, row.pass_)] = i
    first, second = last_rows_by_pass(rows, "first"), last_rows_by_pass(rows, "second")
    out = {}
    for map_id, s in second.items():
        f = first.get(map_id)
        if f is None or f.label == s.label:
            continue
        adjudicated_at = pos.get((map_id, "adjudicated"), -1)
        if adjudicated_at < max(pos[(map_id, "first")], pos[(map_id, "second")]):
            out[map_id] = (f.label, s.label)
    return out
