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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Treatment = Callable[[np.ndarray], np.ndarray]


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=array.dtype)
    out[: array.shape[0], : array.shape[1]] = array
    return out


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]  # (1, 1, T, T)
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].clamp_min(0).numpy()


TREATMENTS: dict[str, Treatment] = {
    "pad-128": lambda a: _pad_to(a, 128 if a.shape[0] < 128 else a.shape[0] + 16),
    "pad-double": lambda a: _pad_to(a, 2 * a.shape[0]),
    "resize-up": lambda a: _resize(a, round(1.5 * a.shape[0])),
    "resize-down": lambda a: _resize(a, max(4, round(0.75 * a.shape[0]))),
    "crop-last": lambda a: a[:-1, :-1] if a.shape[0] > 4 else a,
}


def agreement_masks(
    classifier,
    maps: Sequence[np.ndarray],
    treatments: Mapping[str, Treatment] | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Per treatment, a boolean array: is each map's predicted label unchanged by the treatment?"""
    treatments = dict(TREATMENTS if treatments is None else treatments)
    base = classifier.predict_proba(maps, batch_size=batch_size).argmax(axis=1)
    return {
        name: classifier.predict_proba([treat(m) for m in maps], batch_size=batch_size).argmax(axis=1) == base
        for name, treat in treatments.items()
    }


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
    treatments: Mapping[str, Treatment] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Fraction of ``maps`` whose predicted label is unchanged by each treatment (see :func:`summarise_agreement`)."""
    return summarise_agreement(agreement_masks(classifier, maps, treatments, batch_size))


def random_resize(array: np.ndarray, rng: np.random.Generator, low: float = 0.6, high: float = 1.6) -> np.ndarray:
    """The map resampled by a random factor in [``low``, ``high``] (at least 4 tokens): training augmentation."""
    size = max(4, round(array.shape[0] * rng.uniform(low, high)))
    return _resize(array, size) if size != array.shape[0] else array
