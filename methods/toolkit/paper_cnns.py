"""The small networks of the Co-teaching family's papers, layer for layer as their official code.

Each class declares its layers in the official `__init__` order (every conv, then the linear
layer, then every BatchNorm), so `named_parameters()` lists them as the official model does and a
weight copied by position lands where it belongs; the differential tests rely on it. The last
linear layer is `classifier` and everything before it `features`, as every registered network.

* `CNN9`: Co-teaching's 9-layer CNN (bhanML/Co-teaching `model.py` l.11-68), used by its
  main.py for every dataset.
* `CNN6`: the 6-conv CNN of Co-teaching+ on CIFAR-100 (xingruiyu/coteaching_plus `model.py`
  l.43-84) and of JoCoR on CIFAR-10 and CIFAR-100 (hongxin001/JoCoR `model/cnn.py` l.11-52, the
  same network); `dropout_rate` is stored there but never used, so it has no dropout.
* `CNNSmall`: Co-teaching+'s CIFAR-10 LeNet (`model.py` l.21-38).
* `MLPNet`: Co-teaching+'s and JoCoR's MNIST MLP 784-256-10 (`model.py` l.9-19; JoCoR
  `model/cnn.py` l.54-64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.feature_net import FeatureNet, scaled


def _convs(channels: list[int], padding: list[int]) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Conv2d(cin, cout, 3, padding=pad)
        for cin, cout, pad in zip(channels[:-1], channels[1:], padding)
    )


class CNN9(FeatureNet):
    """Co-teaching's 9-layer CNN (the paper's Table 3).

    Conv layers (3x3, with bias) each followed by BN and LeakyReLU(0.01): 128-128-128 (pad 1),
    2x2 max-pool; 256-256-256 (pad 1), 2x2 max-pool; 512-256-128 (pad 0); global average
    pooling; Linear(128, C).

    Dropout is off by default, as the published numbers were trained: the official model.py calls
    `F.dropout2d(h, p=self.dropout_rate)` (l.45, l.54) without `training=`, whose default under
    the PyTorch 0.3 its README pins was `training=False`, a no-op (under current PyTorch the same
    call would be on even in evaluation). `dropout=0.25` turns on the channel dropout the paper's
    Table 3 describes, after each max-pool and active in training only: a named option, not the
    paper recipe.
    """

    MIN_SIZE = 28  # two floor-halving max-pools must leave >= 7 for three pad-0 convs

    def __init__(
        self, num_classes: int, in_channels: int, width: float = 1.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        c128, c256, c512 = (scaled(c, width) for c in (128, 256, 512))
        widths = [in_channels, c128, c128, c128, c256, c256, c256, c512, c256, c128]
        self.convs = _convs(widths, [1] * 6 + [0] * 3)
        self.classifier = nn.Linear(c128, num_classes)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in widths[1:])
        self.dropout = nn.Dropout2d(dropout)
        self.feature_dim = c128

    def features(self, x: Tensor) -> Tensor:
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.leaky_relu(bn(conv(x)), 0.01)
            if i in (2, 5):
                x = self.dropout(F.max_pool2d(x, 2, 2))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class CNN6(FeatureNet):
    """Six 3x3 convs with bias, BN and ReLU: 64-64, 2x2 max-pool, 128-128, max-pool, 196-16,
    max-pool; flatten (16 x 4 x 4 = 256 on 32x32 images); Linear(256, C)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        widths = [in_channels, 64, 64, 128, 128, 196, 16]
        self.convs = _convs(widths, [1] * 6)
        side = image_size // 8
        self.feature_dim = 16 * side * side
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in widths[1:])

    def features(self, x: Tensor) -> Tensor:
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.relu(bn(conv(x)))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2, 2)
        return torch.flatten(x, 1)


class CNNSmall(FeatureNet):
    """LeNet: conv 5x5 (6), ReLU, 2x2 max-pool, conv 5x5 (16), ReLU, max-pool, flatten
    (16 x 5 x 5 = 400 on 32x32 images), Linear 120, ReLU, Linear 84, ReLU; Linear(84, C)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.classifier = nn.Linear(84, num_classes)
        self.feature_dim = 84

    def features(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))))


class MLPNet(FeatureNet):
    """Flatten, Linear(pixels, 256), ReLU; Linear(256, C)."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.fc1(torch.flatten(x, 1)))


def cnn9(
    num_classes: int, in_channels: int, image_size: int, width: float = 1.0, dropout: float = 0.0
) -> FeatureNet:
    if image_size < CNN9.MIN_SIZE:
        raise ConfigError(
            f"cnn9 needs images of at least {CNN9.MIN_SIZE}x{CNN9.MIN_SIZE} (its three pad-0 convs "
            f"run after two max-pools); these are {image_size}x{image_size}: use small_cnn"
        )
    return CNN9(num_classes, in_channels, width, dropout)


def cnn6(num_classes: int, in_channels: int, image_size: int) -> FeatureNet:
    if image_size < 8:
        raise ConfigError(f"cnn6 needs images of at least 8x8 (three max-pools); got {image_size}")
    return CNN6(num_classes, in_channels, image_size)


def cnn_small(num_classes: int, in_channels: int, image_size: int) -> FeatureNet:
    if image_size < 16:
        raise ConfigError(
            f"cnn_small needs images of at least 16x16 (two 5x5 convs and two max-pools); got "
            f"{image_size}x{image_size}"
        )
    return CNNSmall(num_classes, in_channels, image_size)


def mlpnet(num_classes: int, in_channels: int, image_size: int, hidden: int = 256) -> FeatureNet:
    return MLPNet(num_classes, in_channels * image_size * image_size, hidden)
