"""The networks methods train, behind one registry so a suite names them by string.

Every network splits into `features(x)` (the penultimate, pooled feature) and `classifier` (the
final `nn.Linear`), with `forward(x) == classifier(features(x))`. Methods need that split:
SSR's kNN vote runs on the features, and heads such as SSR's projector attach to them, so no method
has to reach into a network's layers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlbench.errors import ConfigError, did_you_mean
from nlbench.methods.toolkit.feature_net import FeatureNet, scaled
from nlbench.methods.toolkit.imagenet_nets import inception_resnet_v2, resnet50, vgg19_bn_ssr
from nlbench.methods.toolkit.loss_paper_nets import resnet_cifar, sce_cnn
from nlbench.methods.toolkit.paper_cnns import cnn6, cnn9, cnn_small, mlpnet
from nlbench.registry import Registry


class MLP(FeatureNet):
    """Two hidden ReLU layers on the flattened image: tiny data and fast tests."""

    def __init__(self, num_classes: int, in_features: int, hidden: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )
        self.feature_dim = hidden
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallCNN(FeatureNet):
    """Three conv-BN-ReLU blocks (32/64/128 channels) and global average pooling.

    Small and fast on a CPU, for 8x8 digits up to 32x32 images. The 2x2 max-pools use
    `ceil_mode` so that no input size shrinks to zero.
    """

    def __init__(self, num_classes: int, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in (32, 64, 128))
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, c1),
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_bn_relu(c1, c2),
            nn.MaxPool2d(2, ceil_mode=True),
            _conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = c3
        self.classifier = nn.Linear(c3, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """SSR's (and DivideMix's) pre-activation block, reproduced with its quirk.

    SSR's preresnet.py says of itself: "The order inside residual blocks is wrong actually". The
    shortcut takes the PRE-ACTIVATED input `a = relu(bn1(x))`, not `x` as in He et al.'s
    pre-activation ResNet; when the shape changes it is a 1x1 strided conv without BN, applied to
    `a`. We follow the official code deliberately: SSR's published numbers were obtained with it.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + self.shortcut(a)


class _ResNet(FeatureNet):
    """Stem conv3x3(in->w, stride 1, no bias) -> BN -> ReLU; four stages of `counts` blocks of
    widths w, 2w, 4w, 8w and strides 1, 2, 2, 2 (each stage's first block strides); global
    average pooling to an 8w-d feature; Linear(8w, C)."""

    def __init__(self, block: type[nn.Module], counts: tuple[int, int, int, int],
                 num_classes: int, in_channels: int, width: int) -> None:  # fmt: skip
        super().__init__()
        self.stem = nn.Sequential(
            _conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        stages, in_planes = [], width
        for count, planes, stride in zip(
            counts, (width, 2 * width, 4 * width, 8 * width), (1, 2, 2, 2)
        ):
            blocks = [block(in_planes, planes, stride)]
            blocks += [block(planes, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


class PreActResNet18(_ResNet):
    """PreResNet18 exactly as SSR's models/preresnet.py (= DivideMix's PreResNet18).

    Stem conv3x3(in->w, stride 1, no bias) -> BN -> ReLU; four stages of two `PreActBlock`s of
    widths w, 2w, 4w, 8w and strides 1, 2, 2, 2; NO final BN/ReLU after the last stage (the
    official code has none). The official pooling is `avg_pool2d(out, 4)`, which on 32x32 inputs
    averages the whole 4x4 map; we use adaptive pooling to 1x1, identical there, so that other
    input sizes also give an 8w-d feature instead of a shape error. `width` (default 64, the
    official) exists to build a tiny version for tests.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int = 64) -> None:
        super().__init__(PreActBlock, (2, 2, 2, 2), num_classes, in_channels, width)


class BasicBlock(nn.Module):
    """He et al.'s post-activation basic block with a 1x1 conv + BN shortcut on a shape change."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ResNet34(_ResNet):
    """The CIFAR ResNet-34 of GCE's reference port (AlanChou/Truncated-Loss `models/resnet.py`).

    Stem conv3x3(in->w, stride 1) -> BN -> ReLU (no max-pool), stages of 3, 4, 6, 3 `BasicBlock`s
    of widths w, 2w, 4w, 8w and strides 1, 2, 2, 2, average pooling (adaptive, identical to the
    port's `avg_pool2d(out, 4)` on 32x32 inputs), Linear(8w, C). `width` 64 is the official.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int = 64) -> None:
        super().__init__(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, width)


class ResNet18(_ResNet):
    """The CIFAR ResNet-18 of DISC (JackYFL/DISC `models/resnet.py` l.131-190, 432-446):
    torchvision's post-activation ResNet-18 with a conv3x3 stride-1 stem and no max-pool, stages
    of 2, 2, 2, 2 `BasicBlock`s, adaptive average pooling, Linear(8w, C); convolutions He-normal
    (fan_out, ReLU), batch norms weight 1 and bias 0, the linear layer torch's default, as there.
    Not the PreAct ResNet-18 of SSR and DivideMix."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 64) -> None:
        super().__init__(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, width)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


def mlp_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU -> Linear: a projection or prediction head on features
    (SSR's, after SimSiam's)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
    )


def _mlp(num_classes: int, in_channels: int, image_size: int, hidden: int = 256) -> FeatureNet:
    return MLP(num_classes, in_channels * image_size * image_size, hidden)


def _small_cnn(
    num_classes: int, in_channels: int, image_size: int, width: float = 1.0
) -> FeatureNet:
    return SmallCNN(num_classes, in_channels, width)


def _preact_resnet18(
    num_classes: int, in_channels: int, image_size: int, width: int = 64
) -> FeatureNet:
    return PreActResNet18(num_classes, in_channels, width)


def _resnet34(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> FeatureNet:
    return ResNet34(num_classes, in_channels, width)


def _resnet18(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> FeatureNet:
    return ResNet18(num_classes, in_channels, width)


class NetworkEntry(NamedTuple):
    builder: Callable[..., FeatureNet]
    doc: str


NETWORKS: Registry[NetworkEntry] = Registry("network")
for _name, _entry in {
    "mlp": NetworkEntry(_mlp, "two 256-unit ReLU layers on the flattened image; tiny data, tests"),
    "small_cnn": NetworkEntry(
        _small_cnn, "three conv-BN-ReLU blocks (32/64/128), global pool; fast on CPU"
    ),
    "preact_resnet18": NetworkEntry(
        _preact_resnet18, "SSR/DivideMix PreAct ResNet-18 (official block order), 512-d feature"
    ),
    "resnet34": NetworkEntry(_resnet34, "CIFAR ResNet-34 (GCE's reference port), 512-d feature"),
    "resnet18": NetworkEntry(_resnet18, "DISC's CIFAR ResNet-18 (post-activation), 512-d feature"),
    "cnn9": NetworkEntry(
        cnn9, "Co-teaching's 9-layer CNN (LeakyReLU; dropout off as published, option dropout)"
    ),
    "cnn6": NetworkEntry(cnn6, "the 6-conv CNN of Co-teaching+ (CIFAR-100) and JoCoR (CIFAR)"),
    "cnn_small": NetworkEntry(cnn_small, "Co-teaching+'s CIFAR-10 LeNet (conv6-conv16-120-84)"),
    "mlpnet": NetworkEntry(mlpnet, "Co-teaching+'s and JoCoR's MNIST MLP (one 256-unit layer)"),
    "sce_cnn": NetworkEntry(sce_cnn, "SCE's 8-layer CIFAR-10 CNN (64/128/196, FC 256)"),
    "resnet_cifar": NetworkEntry(
        resnet_cifar, "Patrini et al.'s Keras CIFAR ResNet, 2 + 6n layers (option depth, 32)"
    ),
    "vgg19_bn_ssr": NetworkEntry(
        vgg19_bn_ssr, "SSR's ANIMAL-10N VGG-19-BN (dropout 0.2 MLP head), 4096-d feature"
    ),
    "resnet50": NetworkEntry(
        resnet50, "torchvision ResNet-50 (SSR, Clothing1M), 2048-d; option weights: local .pth"
    ),
    "inception_resnet_v2": NetworkEntry(
        inception_resnet_v2, "Inception-ResNet-v2 via timm (SSR, WebVision, 299px), 1536-d"
    ),
}.items():
    NETWORKS.add(_name, _entry)


def build_network(
    name: str, num_classes: int, in_channels: int, image_size: int, **options: object
) -> FeatureNet:
    """Build a registered network; a bad name or option is a ConfigError naming the valid ones."""
    builder = NETWORKS.lookup(name).builder
    accepted = list(inspect.signature(builder).parameters)[3:]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ConfigError(
            f"network '{name}' has no option '{unknown[0]}'{did_you_mean(unknown[0], accepted)}; "
            f"options: {', '.join(accepted) or 'none'}"
        )
    return builder(num_classes, in_channels, image_size, **options)
