"""Label suggestions from the trained pattern classifiers, for the annotation session and notebook.

The session (:mod:`attnpatterns.annotation.session`) takes any ``suggest`` function; this module builds one from the
shipped or given classifiers, falling back to the session's cheap heuristic where no classifier is usable. It lives
here, above the annotation package, because the classifiers are trained on the corpus that package manages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attnpatterns.annotation.session import SuggestFn, heuristic_suggester


def classifier_suggester(checkpoints: dict[str, str | Path | None] | None = None, device: str = "cpu") -> SuggestFn:
    """A ``suggest`` function from trained pattern classifiers (:mod:`attnpatterns.patterns`), one per kind.

    ``checkpoints`` maps a kind to a checkpoint path, or to None for the shipped default of that kind. A kind
    without a usable checkpoint falls back to the heuristic (the first call says which in ``suggest.sources``).
    """
    from attnpatterns.patterns import load_classifier

    heuristic = heuristic_suggester()
    wanted = checkpoints if checkpoints is not None else {"raw": None, "normed": None}
    loaded: dict[str, object] = {}
    sources: dict[str, str] = {}
    for kind, path in wanted.items():
        try:
            loaded[kind] = load_classifier(path, kind=kind, device=device)
            sources[kind] = str(path) if path is not None else "default checkpoint"
        except (ValueError, OSError) as err:  # no default yet, or a bad path: say so, do not stop annotating
            sources[kind] = f"heuristic (no classifier: {err})"

    def suggest(array: np.ndarray, kind: str, segment_ids: Sequence[int] | None = None) -> np.ndarray:
        clf = loaded.get(kind)
        if clf is None:
            return heuristic(array, kind, segment_ids=segment_ids)
        segments = None if segment_ids is None else [segment_ids]
        return np.asarray(clf.predict_proba([array], kind=kind, segments=segments))[0]

    suggest.name = "classifier" if loaded else "heuristic"  # type: ignore[attr-defined]
    suggest.sources = sources  # type: ignore[attr-defined]
    suggest.uses_segment_ids = True  # type: ignore[attr-defined]
    return suggest


def make_suggester(spec: str | None = "auto") -> SuggestFn | None:
    """Resolve the notebook's SUGGEST setting: ``auto`` (shipped classifiers where they exist, else heuristic),
    ``heuristic``, ``none``, or a checkpoint path (used for the kind it was trained on)."""
    if spec is None or str(spec).lower() == "none":
        return None
    if str(spec).lower() == "heuristic":
        return heuristic_suggester()
    try:
        if str(spec).lower() == "auto":
            return classifier_suggester()
        from attnpatterns.patterns import load_classifier

        kind = load_classifier(spec).kind
        return classifier_suggester({kind: spec})
    except ImportError:  # the classifier package is not available: heuristics still order the queue
        return heuristic_suggester()
