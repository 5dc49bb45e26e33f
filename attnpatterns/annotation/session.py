"""The logic of the annotation notebook, independent of ipywidgets: a queue of maps, label/skip/undo, progress.

An :class:`AnnotationSession` works on a corpus folder (see :mod:`attnpatterns.annotation.corpus`). Each call to
:meth:`~AnnotationSession.label` appends one row to ``labels.csv`` at once (atomically, under a file lock), so a
crash or a kernel restart loses nothing, and a new session over the same corpus resumes where the last one stopped:
its queue holds only the maps that still need a label in its pass (:mod:`~attnpatterns.annotation.selection`).

Undo never deletes a row: it appends one that restores the map's label as it was before the undone click (with the
original annotator and method, noted as restored), or a ``retracted`` row when there was none.

An optional ``suggest`` callable, ``suggest(array, kind) -> probabilities over PATTERN_TYPES`` (a trained
classifier through :func:`attnpatterns.patterns.suggest.make_suggester`, or :func:`heuristic_suggester`), gives the
suggestion and confidence shown for the current map, and the ``uncertain`` order puts the maps it is least sure of
first (active learning). The suggestion shown is written into the row's note, so a later analysis can check for
anchoring.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.annotation.corpus import (
    PASSES,
    RETRACTED,
    CorpusMap,
    LabelRow,
    append_labels,
    effective_label_rows,
    parse_label,
    read_arrays,
    read_labels,
    read_map_index,
)
from attnpatterns.annotation.selection import DEFAULT_SECOND_FRACTION, last_rows_by_pass, pending_map_ids
from attnpatterns.constants import PATTERN_TYPES

#: ``suggest(array (T, T) float32, kind) -> probabilities (5,) over PATTERN_TYPES``
SuggestFn = Callable[[np.ndarray, str], Sequence[float]]

ORDERS: tuple[str, ...] = ("corpus", "random", "uncertain")


@dataclass(frozen=True)
class Suggestion:
    label: str
    confidence: float
    probabilities: dict[str, float]

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.0%})"


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.total - self.done

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        return f"{self.done}/{self.total} labelled ({self.remaining} to go, {self.skipped} skipped)" + (
            f" - {counts}" if counts else ""
        )


@dataclass(frozen=True)
class _Action:
    map_id: str
    previous: LabelRow | None  # the row that set this pass's label before the click (None: no label)
    written: LabelRow | None = None  # the row the click wrote: undo only while it still holds the label


def heuristic_suggester() -> SuggestFn:
    """A ``suggest`` function from :mod:`~attnpatterns.annotation.heuristics` (no trained classifier needed).

    It takes the map's segment ids too (the block score needs them); a suggester that sets the attribute
    ``uses_segment_ids`` is called as ``suggest(array, kind, segment_ids=...)``.
    """
    from attnpatterns.annotation.heuristics import heuristic_probabilities

    def suggest(array: np.ndarray, kind: str, segment_ids: Sequence[int] | None = None) -> np.ndarray:
        return heuristic_probabilities(array, segment_ids)

    suggest.name = "heuristic"  # type: ignore[attr-defined]
    suggest.uses_segment_ids = True  # type: ignore[attr-defined]
    return suggest


class AnnotationSession:
    """Label the maps of a corpus one at a time; every click is saved at once.

    Args:
        root: corpus folder.
        annotator: who is labelling (a person's or an agent's name); recorded on every row.
        pass_: ``first`` (unlabelled maps), ``second`` (independent re-labelling of a seeded sample) or
            ``adjudicated`` (maps whose two passes disagree).
        kind: only maps of this kind (``raw``/``normed``), or all.
        map_ids: restrict the session to these maps (e.g. those just imported from an extraction run).
        suggest: optional ``(array, kind) -> probabilities over PATTERN_TYPES``.
        order: ``corpus`` (file order), ``random`` (seeded) or ``uncertain`` (least confident suggestion first;
            needs ``suggest``).
        method: how the labels are made, written on every row; a sensible default says "notebook" plus the order
            and the suggester.
    """

    def __init__(
        self,
        root: str | Path,
        annotator: str,
        *,
        pass_: str = "first",
        kind: str | None = None,
        map_ids: Sequence[str] | None = None,
        suggest: SuggestFn | None = None,
        order: str = "corpus",
        seed: int = 0,
        second_fraction: float = DEFAULT_SECOND_FRACTION,
        method: str | None = None,
    ):
        if not str(annotator).strip():
            raise ValueError("an annotation session needs an annotator name")
        if pass_ not in PASSES:
            raise ValueError(f"pass {pass_!r} is not one of {', '.join(PASSES)}")
        if order not in ORDERS:
            raise ValueError(f"order {order!r} is not one of {', '.join(ORDERS)}")
        if order == "uncertain" and suggest is None:
            raise ValueError("order='uncertain' needs a suggest function (a classifier or heuristic_suggester())")
        self.root = Path(root)
        self.annotator = str(annotator).strip()
        self.pass_ = pass_
        self.kind = kind
        self.suggest_fn = suggest
        self.order = order
        self.seed = seed
        self.second_fraction = second_fraction
        suggester = getattr(suggest, "name", "classifier") if suggest is not None else "none"
        self.method = method or f"notebook (order={order}, suggestions={suggester})"
        self._restrict = None if map_ids is None else set(map_ids)
        self._maps: dict[str, CorpusMap] = {}
        self._suggestions: dict[str, Suggestion] = {}
        self._history: list[_Action] = []
        self._skipped: set[str] = set()
        self.refresh()

    # ---------------------------------------------------------------------------------------------------------
    # queue
    # ---------------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the corpus and rebuild the queue (maps labelled meanwhile by another session drop out)."""
        index = [m for m in read_map_index(self.root) if self.kind is None or m["kind"] == self.kind]
        if self._restrict is not None:
            index = [m for m in index if m["map_id"] in self._restrict]
        self._index = {m["map_id"]: m for m in index}
        rows = read_labels(self.root)
        pending = pending_map_ids(rows, index, self.annotator, self.pass_, None, self.second_fraction, self.seed)
        # labels of this pass (the effective ones; in the second pass, this annotator's own)
        self._labels = {m: r.label for m, r in self._pass_rows(rows).items() if m in self._index}
        self._scope = set(pending) | set(self._labels)
        self._queue = self._ordered([m for m in pending if m not in self._skipped]) + [
            m for m in pending if m in self._skipped
        ]

    def _pass_rows(self, rows: Sequence[LabelRow]) -> dict[str, LabelRow]:
        """The row that currently holds each map's label for this session's pass."""
        if self.pass_ == "second":
            return last_rows_by_pass(rows, "second", self.annotator)
        return effective_label_rows(rows)

    def _ordered(self, ids: list[str]) -> list[str]:
        if self.order == "random":
            ids = list(ids)
            random.Random(self.seed).shuffle(ids)
        elif self.order == "uncertain":
            ids = sorted(ids, key=lambda m: self.suggestion(m).confidence)  # stable: ties keep corpus order
        return ids

    @property
    def queue(self) -> list[str]:
        """Map ids still to label, current first."""
        return list(self._queue)

    @property
    def current_id(self) -> str | None:
        return self._queue[0] if self._queue else None

    def get_map(self, map_id: str) -> CorpusMap:
        if map_id not in self._maps:
            if map_id not in self._index:
                raise KeyError(f"map {map_id!r} is not in this session's corpus/selection")
            array = read_arrays(self.root, [map_id])[map_id]
            self._maps[map_id] = CorpusMap.from_metadata(self._index[map_id], array)
        return self._maps[map_id]

    def current(self) -> CorpusMap | None:
        """The map to label now (None when the queue is empty)."""
        return None if self.current_id is None else self.get_map(self.current_id)

    def suggestion(self, map_id: str | None = None) -> Suggestion | None:
        """The suggester's label and confidence for a map (the current one by default); None without a suggester."""
        map_id = map_id or self.current_id
        if self.suggest_fn is None or map_id is None:
            return None
        if map_id not in self._suggestions:
            m = self.get_map(map_id)
            extra = {"segment_ids": m.segment_ids} if getattr(self.suggest_fn, "uses_segment_ids", False) else {}
            p = np.asarray(self.suggest_fn(m.array, m.kind, **extra), dtype=np.float64).reshape(-1)
            if p.shape != (len(PATTERN_TYPES),):
                raise ValueError(f"suggest returned {p.shape[0]} values; it must give one per type {PATTERN_TYPES}")
            p = p / p.sum() if p.sum() > 0 else np.full(len(PATTERN_TYPES), 1 / len(PATTERN_TYPES))
            best = int(np.argmax(p))
            self._suggestions[map_id] = Suggestion(
                PATTERN_TYPES[best], float(p[best]), dict(zip(PATTERN_TYPES, map(float, p)))
            )
        return self._suggestions[map_id]

    # ---------------------------------------------------------------------------------------------------------
    # actions
    # ---------------------------------------------------------------------------------------------------------

    def label(self, label: str, map_id: str | None = None, note: str = "") -> LabelRow:
        """Save ``label`` for a map (the current one by default) at once and move on; returns the row written."""
        map_id = map_id or self.current_id
        if map_id is None:
            raise ValueError("nothing left to label in this session")
        if map_id not in self._index:
            raise KeyError(f"map {map_id!r} is not in this session's corpus/selection")
        label = parse_label(label)
        s = self.suggestion(map_id)
        notes = [n for n in (note, f"suggested {s.label} ({s.confidence:.2f})" if s else "") if n]
        seen: list[LabelRow | None] = []

        def unchanged(rows: list[LabelRow]) -> None:  # under the corpus lock, just before the row is appended
            previous = self._pass_rows(rows).get(map_id)
            if (None if previous is None else previous.label) != self._labels.get(map_id):
                # another session labelled it since this one last read the corpus: never write over that unseen
                who = "retracted" if previous is None else f"labelled {previous.label!r} by {previous.annotator}"
                raise ValueError(f"map {map_id} was {who} meanwhile, in another session; nothing was written. "
                                 "Call refresh() to see it, then label it again if you mean to change it.")
            seen.append(previous)

        (row,) = append_labels(self.root, [LabelRow(
            map_id=map_id, label=label, annotator=self.annotator, method=self.method, pass_=self.pass_,
            note="; ".join(notes),
        )], check=unchanged)
        previous = seen[0]
        self._history.append(_Action(map_id, previous, row))
        self._labels[map_id] = label
        self._scope.add(map_id)
        self._skipped.discard(map_id)
        if map_id in self._queue:
            self._queue.remove(map_id)
        return row

    def skip(self) -> str | None:
        """Put the current map at the end of the queue (nothing is written); returns the new current id."""
        if self._queue:
            map_id = self._queue.pop(0)
            self._skipped.add(map_id)
            self._queue.append(map_id)
        return self.current_id

    def undo(self) -> LabelRow | None:
        """Take back this session's last label: append a row restoring the label before it; the map is current again.

        Returns the row written, or None when there is nothing to undo.
        """
        if not self._history:
            return None
        action = self._history[-1]

        def still_mine(rows: list[LabelRow]) -> None:  # under the corpus lock, before the undo row is appended
            now = self._pass_rows(rows).get(action.map_id)
            if action.written is not None and (now is None or now.to_csv_dict() != action.written.to_csv_dict()):
                # someone labelled the map after this click: undoing would erase their label, not this one
                who = "retracted" if now is None else f"labelled {now.label!r} by {now.annotator}"
                raise ValueError(f"map {action.map_id} was {who} after your label, in another session; nothing "
                                 "was undone (their label stays).")

        prev = action.previous
        if prev is None:
            row = LabelRow(map_id=action.map_id, label=RETRACTED, annotator=self.annotator, method=self.method,
                           pass_=self.pass_, note="undo")
        else:
            row = LabelRow(map_id=action.map_id, label=prev.label, annotator=prev.annotator, method=prev.method,
                           pass_=prev.pass_, note=f"restored by {self.annotator} (undo)")
        (written,) = append_labels(self.root, [row], check=still_mine)
        self._history.pop()
        if prev is None:
            self._labels.pop(action.map_id, None)
        else:
            self._labels[action.map_id] = prev.label
        if action.map_id in self._queue:
            self._queue.remove(action.map_id)
        self._queue.insert(0, action.map_id)
        return written

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def progress(self) -> Progress:
        """Labelled / total maps in this session's scope, skips, and counts per label."""
        done = {m: lab for m, lab in self._labels.items() if m in self._scope}
        counts = {t: sum(1 for lab in done.values() if lab == t) for t in PATTERN_TYPES}
        return Progress(done=len(done), total=len(self._scope), skipped=len(self._skipped & set(self._queue)),
                        counts=counts)
