"""How stable the classifier's labels are when the same map is cropped, padded or resized differently.

The original classifier's input changed with cropping and padding; this one is meant not to (see
:mod:`attnpatterns.patterns.preprocess`). :func:`treatment_agreement` measures it: the fraction of maps whose label
under a treatment equals their label as given. Treatments, registered in :data:`TREATMENTS`:

``pad-128``       zero-pad at the bottom/right to 128 tokens (to ``T + 16`` when already longer), as a fixed-size
                  input pipeline would;
``pad-double``    zero-pad to twice the size;
``resize-up``     resample to ``round(1.5 T)`` tokens (bilinear, antialiased);
``resize-down``   resample to ``round(0.75 T)`` tokens (at least 4);
``crop-last``     drop the last token's row and column (for BERT-style input, the final ``[SEP]``); unlike the
                  others this changes the content of the map, so some disagreement is legitimate.

For a classifier that reads segment ids (``segment_statistics``), each :class:`Treatment` carries its counterpart
for the ids (padding repeats the last id, resampling picks the id of the nearest original token, cropping drops the
last id), so that a pair stays the same pair under the treatment. A plain function of a map may stand in for a
treatment; having no rule for the ids, its treated maps are read as single sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Treatment:
    """A change of a map's size, called like a function of the map (``apply``), with the same change for the map's
    segment ids: ``segments(ids, treated size)`` (None: no rule, the treated map counts as a single sentence)."""

    apply: Callable[[np.ndarray], np.ndarray]
    segments: Callable[[np.ndarray, int], np.ndarray] | None = None

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return self.apply(array)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=array.dtype)
    out[: array.shape[0], : array.shape[1]] = array
    return out


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]  # (1, 1, T, T)
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].clamp_min(0).numpy()


def resize_segments(segments, size: int) -> np.ndarray:
    """Segment ids for a map resampled from ``len(segments)`` to ``size`` tokens: each new token takes the id of
    the original token under its centre (nearest neighbour), so a pair's boundary moves with the map."""
    seg = np.asarray(segments, dtype=np.int64)
    index = np.minimum(((np.arange(size) + 0.5) * len(seg) / size).astype(np.int64), len(seg) - 1)
    return seg[index]


def _pad_segments(segments, size: int) -> np.ndarray:
    seg = np.asarray(segments, dtype=np.int64)
    return np.concatenate([seg, np.full(size - len(seg), seg[-1], dtype=np.int64)])


def _crop_segments(segments, size: int) -> np.ndarray:
    return np.asarray(segments, dtype=np.int64)[:size]


TREATMENTS: dict[str, Treatment] = {
    "pad-128": Treatment(lambda a: _pad_to(a, 128 if a.shape[0] < 128 else a.shape[0] + 16), _pad_segments),
    "pad-double": Treatment(lambda a: _pad_to(a, 2 * a.shape[0]), _pad_segments),
    "resize-up": Treatment(lambda a: _resize(a, round(1.5 * a.shape[0])), resize_segments),
    "resize-down": Treatment(lambda a: _resize(a, max(4, round(0.75 * a.shape[0]))), resize_segments),
    "crop-last": Treatment(lambda a: a[:-1, :-1] if a.shape[0] > 4 else a, _crop_segments),
}


def agreement_masks(
    classifier,
    maps: Sequence[np.ndarray],
    treatments: Mapping[str, Treatment | Callable[[np.ndarray], np.ndarray]] | None = None,
    batch_size: int = 256,
    segments: Sequence | None = None,
) -> dict[str, np.ndarray]:
    """Per treatment, a boolean array: is each map's predicted label unchanged by the treatment?

    ``segments`` (one list of ids per map, or None) go with the maps, each treatment's ids made by its
    :attr:`Treatment.segments`; a treatment without that rule (e.g. a plain function) gets none, so its maps count as
    single sentences.
    """
    treatments = dict(TREATMENTS if treatments is None else treatments)
    base = classifier.predict_proba(maps, batch_size=batch_size, segments=segments).argmax(axis=1)
    out = {}
    for name, treat in treatments.items():
        treated = [treat(m) for m in maps]
        rule = getattr(treat, "segments", None)
        ids = None
        if segments is not None and rule is not None:
            ids = [None if s is None else rule(s, t.shape[0]) for s, t in zip(segments, treated)]
        out[name] = classifier.predict_proba(treated, batch_size=batch_size, segments=ids).argmax(axis=1) == base
    return out


def summarise_agreement(masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Fractions per treatment, plus ``"all"`` (pooled over every treatment) and ``"all-but-crop"`` (pooled over
    the content-preserving ones: pads and resizes)."""
    out = {name: float(np.mean(a)) for name, a in masks.items()}
    out["all"] = float(np.concatenate(list(masks.values())).mean())
    preserving = [a for name, a in masks.items() if not name.startswith("crop")]
    if preserving:
        out["all-but-crop"] = float(np.concatenate(preserving).mean())
    return out


def treatment_agreement(
    classifier,
    maps: Sequence[np.ndarray],
    treatments: Mapping[str, Treatment | Callable[[np.ndarray], np.ndarray]] | None = None,
    batch_size: int = 256,
    segments: Sequence | None = None,
) -> dict[str, float]:
    """Fraction of ``maps`` whose predicted label is unchanged by each treatment (see :func:`summarise_agreement`)."""
    return summarise_agreement(agreement_masks(classifier, maps, treatments, batch_size, segments))


def random_resize(array: np.ndarray, rng: np.random.Generator, low: float = 0.6, high: float = 1.6) -> np.ndarray:
    """The map resampled by a random factor in [``low``, ``high``] (at least 4 tokens): training augmentation."""
    size = max(4, round(array.shape[0] * rng.uniform(low, high)))
    return _resize(array, size) if size != array.shape[0] else array
