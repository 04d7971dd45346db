"""The networks of the loss-based methods' official code, layer for layer.

* `SCECNN`: SCE's 8-layer CIFAR-10 CNN (HanxunH/SCELoss-Reproduce `model.py` l.5-48): three blocks
  of two conv3x3(+bias)-BN-ReLU layers (64, 128, 196 channels) each ending in a 2x2 max-pool,
  then Linear(196 * (H/8)^2, 256)-BN1d-ReLU and Linear(256, C). On 32x32 images the first linear
  layer is the official 3136 -> 256.
* `ResNetCIFAR`: the Keras CIFAR ResNet of Patrini et al. (giorgiop/loss-correction `resnet.py`
  l.30-133, after raghakot/keras-resnet): 2 + 6n layers, a conv3x3(16, +bias)-BN-ReLU stem, three
  stages of n pre-activation blocks (16, 32, 64 filters; BN-ReLU-conv-BN-ReLU-conv, the very first
  block without the leading BN-ReLU, the first block of stages 2 and 3 striding 2 with a 1x1
  conv shortcut), a final BN-ReLU, global average pooling (the official 8x8 pool on 32x32) and a
  linear layer. Convolutions and the linear layer are He-normal initialised (Keras' truncated
  normal), biases zero; BatchNorm as Keras' defaults (momentum 0.99, i.e. PyTorch's 0.01, and
  epsilon 1e-3). Its trainable parameters match the Keras model's: 467,946 at 32 layers, 662,826
  at 44.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.feature_net import FeatureNet, scaled


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class SCECNN(FeatureNet):
    """SCE's 8-layer CNN (see the module docstring); `width` scales the channels for tests."""

    def __init__(
        self, num_classes: int, in_channels: int, image_size: int, width: float = 1.0
    ) -> None:
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in (64, 128, 196))
        blocks, cin = [], in_channels
        for cout in (c1, c2, c3):
            blocks += [_conv_bn_relu(cin, cout), _conv_bn_relu(cout, cout), nn.MaxPool2d(2, 2)]
            cin = cout
        self.body = nn.Sequential(*blocks)
        side = image_size // 8
        if side < 1:
            raise ConfigError(
                f"sce_cnn needs images of at least 8x8, got {image_size}x{image_size}"
            )
        self.fc1 = nn.Sequential(nn.Linear(c3 * side * side, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.feature_dim = 256
        self.classifier = nn.Linear(256, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.fc1(torch.flatten(self.body(x), 1))


def _keras_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, first: bool) -> None:
        super().__init__()
        self.pre = nn.Identity() if first else nn.Sequential(_keras_bn(cin), nn.ReLU())
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.mid = nn.Sequential(_keras_bn(cout), nn.ReLU())
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.mid(self.conv1(self.pre(x)))) + self.shortcut(x)


class ResNetCIFAR(FeatureNet):
    """Patrini et al.'s Keras CIFAR ResNet with `depth` = 2 + 6n layers (see the module
    docstring); `width` is the first stage's filters (16, the official)."""

    def __init__(
        self, num_classes: int, in_channels: int, depth: int = 32, width: int = 16
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(
                f"resnet_cifar depth must be 2 + 6n (8, 14, 20, 32, 44, ...), got {depth}"
            )
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), _keras_bn(width), nn.ReLU()
        )
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                first_of_stage = i == 0
                stride = 2 if stage > 0 and first_of_stage else 1
                blocks.append(_PreActBlock(cin, cout, stride, first=stage == 0 and first_of_stage))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.post = nn.Sequential(_keras_bn(cin), nn.ReLU())
        self.feature_dim = cin
        self.classifier = nn.Linear(cin, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                _he_normal(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: Tensor) -> Tensor:
        out = self.post(self.blocks(self.stem(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)


def _he_normal(weight: Tensor) -> None:
    """Keras' he_normal: a normal truncated at two standard deviations whose std is corrected
    (/0.8796) so that the truncated draw has variance 2 / fan_in."""
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def sce_cnn(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> FeatureNet:
    return SCECNN(num_classes, in_channels, image_size, width)


def resnet_cifar(
    num_classes: int, in_channels: int, image_size: int, depth: int = 32, width: int = 16
) -> FeatureNet:
    return ResNetCIFAR(num_classes, in_channels, depth, width)
