"""A trained pattern classifier: the network together with everything needed to use it correctly.

:class:`PatternClassifier` bundles the network (:class:`~attnpatterns.patterns.model.PatternEnsemble`), the
preprocessing it was trained with, the kind of map it is for ("raw" or "normed") and its training metadata, plus
the tree model over the feature vector (:mod:`~attnpatterns.patterns.forest`: gradient boosting or a random
forest) whose probabilities are mixed in with weight ``network.config.forest_weight``. It refuses maps of the other
kind (:class:`KindMismatchError`); the network runs on the device it sits on, the trees on the CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from attnpatterns.constants import MAP_KINDS, PATTERN_TYPES
from attnpatterns.patterns.forest import BoostedTrees, TreeForest
from attnpatterns.patterns.model import ModelConfig, PatternEnsemble
from attnpatterns.patterns.preprocess import Features, PreprocessConfig, preprocess_maps


class KindMismatchError(ValueError):
    """A classifier trained on one kind of map (raw / normed) was asked to label the other kind."""


@dataclass
class PatternClassifier:
    """A :class:`PatternEnsemble` with its kind, preprocessing and label names; use :meth:`predict_proba`."""

    network: PatternEnsemble
    kind: str
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    label_names: tuple[str, ...] = PATTERN_TYPES
    metadata: dict = field(default_factory=dict)
    forest: TreeForest | BoostedTrees | None = None  #: required when ``network.config.forest_weight > 0``

    def __post_init__(self) -> None:
        if self.kind not in MAP_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MAP_KINDS)}, got {self.kind!r}")
        self.label_names = tuple(self.label_names)
        if self.label_names != PATTERN_TYPES:
            raise ValueError(f"label names {self.label_names} differ from the pattern types {PATTERN_TYPES}")

    @classmethod
    def new(
        cls,
        kind: str,
        preprocess: PreprocessConfig = PreprocessConfig(),
        model: ModelConfig = ModelConfig(),
        metadata: dict | None = None,
    ) -> PatternClassifier:
        """An untrained classifier (random weights) for ``kind``."""
        network = PatternEnsemble(model, preprocess.n_channels, preprocess.n_vector)
        return cls(network, kind, preprocess, PATTERN_TYPES, dict(metadata or {}))

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> PatternClassifier:
        self.network.to(device)
        return self

    def check_kind(self, kind: str | None, where: str = "these maps") -> None:
        """Raise :class:`KindMismatchError` unless ``kind`` (None = unknown, accepted) is this classifier's kind."""
        if kind is not None and kind != self.kind:
            source = self.metadata.get("path", "this checkpoint")
            raise KindMismatchError(
                f"{source} was trained on {self.kind} maps and cannot classify {kind} maps ({where}); "
                f"use a {kind} checkpoint (the shipped default for {kind} is used when no checkpoint is given)"
            )

    def features(
        self,
        maps: Sequence,
        names: Sequence[str] | None = None,
        batch_size: int = 256,
        segments: Sequence | None = None,
    ) -> Features:
        """The maps' classifier inputs; ``segments`` (segment ids per map) matter when the preprocessing reads them."""
        return preprocess_maps(maps, self.preprocess, names=names, device=self.device, batch_size=batch_size,
                               segments=segments)

    @property
    def forest_weight(self) -> float:
        return self.network.config.forest_weight if self.forest is not None else 0.0

    @torch.no_grad()
    def predict_members(self, feats: Features, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Class probabilities (N, 5) of each part: ``cnn`` (the network ensemble) and, if there is one, ``forest``."""
        self.network.eval()
        out = []
        for start in range(0, len(feats), batch_size):
            part = feats[start : start + batch_size].to(self.device)
            out.append(torch.softmax(self.network(part.images, part.vectors), dim=1).cpu())
        members = {"cnn": torch.cat(out).numpy() if out else np.zeros((0, len(self.label_names)), np.float32)}
        if self.forest is not None:
            members["forest"] = self.forest.predict_proba(feats.vectors)
        return members

    def mix(self, members: dict[str, np.ndarray]) -> np.ndarray:
        """The classifier's probabilities from those of its parts (:meth:`predict_members`)."""
        if "forest" not in members:
            return members["cnn"]
        w = self.forest_weight
        return ((1.0 - w) * members["cnn"] + w * members["forest"]).astype(np.float32)

    def predict_features(self, feats: Features, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, 5) for already featurised maps: the CNN ensemble mixed with the forest."""
        return self.mix(self.predict_members(feats, batch_size))

    def predict_proba(
        self,
        maps: Sequence,
        kind: str | None = None,
        names: Sequence[str] | None = None,
        batch_size: int = 256,
        segments: Sequence | None = None,
    ) -> np.ndarray:
        """Probabilities (N, 5) over :data:`PATTERN_TYPES` for maps of any sizes; checks ``kind`` when given.
        ``segments``: each map's segment ids (None where unknown), read when :attr:`reads_segments`."""
        self.check_kind(kind)
        return self.predict_features(self.features(maps, names, batch_size, segments), batch_size)

    @property
    def reads_segments(self) -> bool:
        """Whether the classifier's inputs include the maps' segment ids (sentence pairs); without them every map
        counts as a single sentence."""
        return self.preprocess.segment_statistics

    def warn_without_segments(self, where: str, advice: str = "") -> None:
        """Warn, if this classifier reads segment ids, that the maps of ``where`` carry none (so each is read as a
        single sentence); ``advice`` says what to do instead. Called by the functions that take maps without ids."""
        if self.reads_segments:
            warnings.warn(
                f"this classifier reads the maps' segment ids to see sentence pairs, and {where} carry none: every "
                f"map is read as a single sentence, which may lower its scores on pairs.{advice}",
                stacklevel=3,
            )

    def predict(
        self, maps: Sequence, kind: str | None = None, batch_size: int = 256, segments: Sequence | None = None
    ) -> list[str]:
        """The most probable pattern type of each map."""
        probs = self.predict_proba(maps, kind=kind, batch_size=batch_size, segments=segments)
        return [self.label_names[i] for i in probs.argmax(axis=1)]
