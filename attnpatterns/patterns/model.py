"""The pattern classifier network: a small CNN over the pooled map plus an MLP over its scale-free profiles.

Input is a :class:`~attnpatterns.patterns.preprocess.Features` batch: images (B, 3, G, G) and vectors (B, V)
(see :mod:`attnpatterns.patterns.preprocess`). The image branch is four 3x3 conv blocks (group norm, ReLU, 2x2 max
pooling after the first three) followed by global average *and* max pooling, so the network sees whether a
structure is present anywhere (max) and how much of the map it covers (mean), independent of where it sits. The
vector branch is one hidden layer. The two are concatenated and a two-layer head gives logits over the five
pattern types. :class:`PatternEnsemble` averages the probabilities of a few such networks (three by default), each
trained on its own seed and validation split: on the project's corpus this was worth two to four points of
cross-validated macro-F1 over one network and steadier labels, for three times the (small) cost. With the
defaults a network has about 20 thousand parameters and the ensemble about 61 thousand (the original classifier
was a ~73k-parameter fully convolutional net).

The shipped classifier mixes the ensemble's probabilities with those of a tree model over the same feature vector
(``forest_weight``, default 0.7; :mod:`attnpatterns.patterns.forest`): on the project's corpus the trees alone
scored higher than the CNN alone, and the mix at least as high as either, in grouped cross-validation (the CV report
of every training run prints all three). ``forest_weight=0`` (``attnpatterns train --forest-weight 0``) gives the
CNN ensemble alone. The tree model (``forest_method``) is gradient boosting by default, chosen by grouped 5-fold
cross-validation on the corpus over three fold splits, the held-out test set unread (benchmarks/RESULTS.md, "Pattern
classifier: gradient boosting"): normed, the mix with boosting scored macro-F1 0.792 / 0.791 / 0.791 and κ 0.816 /
0.810 / 0.805 against 0.784 / 0.795 / 0.789 and 0.800 / 0.796 / 0.802 with the random forest
(``benchmarks/cv_grid.py --kind normed --forest-method gradient-boosting --repeats 3``); raw, the rebuild of the
shipped checkpoint (``python -m attnpatterns.patterns.rebuild_defaults --kind raw``, the same corpus and fold seeds as
the random forest's rebuild) scored 0.811 / 0.812 / 0.816 against 0.806 / 0.812 / 0.814. A checkpoint saved before
the choice existed keeps its random forest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.patterns.forest import FOREST_METHODS


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; saved in the checkpoint."""

    channels: tuple[int, ...] = (8, 16, 24, 32)
    vector_hidden: int = 32
    head_hidden: int = 48
    dropout: float = 0.2
    members: int = 3  #: networks in the ensemble (each trained on its own seed and validation split)
    n_classes: int = len(PATTERN_TYPES)
    #: share of the tree model over the feature vector in the final probabilities (0 = the CNN ensemble alone;
    #: see :mod:`attnpatterns.patterns.forest`)
    forest_weight: float = 0.7
    forest_trees: int = 200
    forest_min_leaf: int = 2
    forest_augmented: bool = False  #: also fit the forest on the resized training copies (``TrainConfig.augment``)
    #: the tree model over the feature vector, one of :data:`~attnpatterns.patterns.forest.FOREST_METHODS`: a random
    #: forest (``forest_trees``, ``forest_min_leaf``) or gradient boosting (``boost_iterations``,
    #: ``boost_learning_rate``)
    forest_method: str = "gradient-boosting"
    boost_iterations: int = 300
    boost_learning_rate: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) < 1 or min(self.channels) < 1:
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.forest_weight < 1.0:
            raise ValueError(f"forest_weight must be in [0, 1) (the CNN keeps a share), got {self.forest_weight}")
        if self.forest_trees < 1 or self.forest_min_leaf < 1:
            raise ValueError("forest_trees and forest_min_leaf must be positive")
        if self.forest_method not in FOREST_METHODS:
            raise ValueError(f"forest_method must be one of {', '.join(FOREST_METHODS)}, got {self.forest_method!r}")
        if self.boost_iterations < 1 or not 0.0 < self.boost_learning_rate <= 1.0:
            raise ValueError("boost_iterations must be positive and boost_learning_rate in (0, 1]")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        fields = ("channels", "vector_hidden", "head_hidden", "dropout", "members", "n_classes", "forest_weight",
                  "forest_trees", "forest_min_leaf", "forest_augmented", "forest_method", "boost_iterations",
                  "boost_learning_rate")
        # a checkpoint saved before the forest existed is the CNN ensemble alone, and one saved before the choice of
        # tree model has a random forest
        return cls(**{"forest_weight": 0.0, "forest_method": "random-forest",
                      **{k: data[k] for k in fields if k in data}})


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    # group norm rather than batch norm: no running statistics, so a model behaves the same in training and in
    # evaluation even after a few steps on a small set (early stopping may keep an early epoch)
    norm = nn.GroupNorm(min(4, c_out), c_out)
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), norm, nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class PatternCNN(nn.Module):
    """Logits over the pattern types for a batch of featurised maps."""

    def __init__(self, config: ModelConfig, in_channels: int, n_vector: int) -> None:
        super().__init__()
        self.config = config
        blocks = []
        c_in = in_channels
        for index, c_out in enumerate(config.channels):
            blocks.append(_conv_block(c_in, c_out, pool=index < len(config.channels) - 1))
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.vector_branch = nn.Sequential(nn.Linear(n_vector, config.vector_hidden), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(2 * c_in + config.vector_hidden, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.n_classes),
        )

    def forward(self, images: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        h = self.convs(images)  # (B, C, G', G')
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (B, 2C)
        v = self.vector_branch(vectors)  # (B, vector_hidden)
        return self.head(torch.cat([pooled, v], dim=1))  # (B, n_classes)


class PatternEnsemble(nn.Module):
    """``config.members`` independently trained :class:`PatternCNN` whose probabilities are averaged.

    ``forward`` returns the log of the mean member probability, so ``softmax(forward(...))`` is that mean and the
    ensemble can be used wherever a single network's logits are.
    """

    def __init__(self, config: ModelConfig, in_channels: int, n_vector: int) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(PatternCNN(config, in_channels, n_vector) for _ in range(config.members))

    def forward(self, images: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        log_p = torch.stack([torch.log_softmax(m(images, vectors), dim=1) for m in self.members])  # (M, B, C)
        return torch.logsumexp(log_p, dim=0) - math.log(len(self.members))  # (B, C)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
