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
