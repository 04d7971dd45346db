"""The shape every registered network has: a feature extractor followed by one linear classifier.

Methods need that split: SSR's kNN vote runs on the features, and heads such as SSR's projector
attach to them, so no method has to reach into a network's layers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class FeatureNet(nn.Module, ABC):
    """Base of every registered network: a feature extractor followed by one linear classifier."""

    feature_dim: int
    classifier: nn.Linear

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """The penultimate, pooled feature, shape (batch, feature_dim)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def normal_init(module: nn.Module, std: float) -> None:
    """N(0, std) weights and zero biases for every nn.Linear in `module`: the `init_weights` of
    SSR's real-world scripts (main_animal10.py l.203-206: 0.005; main_clothing1m.py l.170-173:
    0.001)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
