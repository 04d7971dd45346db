"""The ImageNet-sized networks SSR's official code trains on real-world noisy datasets.

SSR (MrChenFeng/SSR_BMVC2022, commit 849530dda0cb8fe1a6af5f11ecaf45858cbe8285) builds an
`encoder` (everything up to the penultimate feature) and a separate `classifier` (one
`nn.Linear`), and saves them as two state dicts. Each network here keeps that split literally:
`self.encoder` is the official encoder module, so its state dict has the official keys, and
`self.classifier` is the official classifier.

* `vgg19_bn_ssr`: ANIMAL-10N (`main_animal10.py` l.193-218), 64x64 inputs.
* `resnet50`: Clothing1M (`main_clothing1m.py` l.167-187), ImageNet weights from a local file.
* `inception_resnet_v2`: (mini-)WebVision (`main_webvision.py` l.173-176), 299x299, from timm.

None of them downloads anything (torchvision is never asked for weights); in_channels other
than 3 is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.feature_net import FeatureNet, normal_init


def _rgb_only(name: str, in_channels: int) -> None:
    if in_channels != 3:
        raise ConfigError(
            f"network {name} takes RGB images (in_channels 3), got in_channels {in_channels}; "
            "use a dataset with 3 channels or another network"
        )


class VGG19BNSSR(FeatureNet):
    """SSR's ANIMAL-10N network: torchvision VGG-19-BN, random init, a 4096-d feature.

    As `main_animal10.py` (commit 849530dd) l.193-218: `vgg19_bn(pretrained=False)` with its
    classifier replaced (l.194-201) by Linear(512*7*7, 4096) -> ReLU -> Dropout(0.2) ->
    Linear(4096, 4096) -> ReLU -> Dropout(0.2); both Linears N(0, 0.005) weights and zero bias
    (`init_weights`, l.203-208). The 4096-d output of that block is `features`; `classifier` is
    Linear(4096, C) (l.209), initialised the same way (l.218). The convolutions keep
    torchvision's init (Kaiming normal, fan_out). torchvision's AdaptiveAvgPool2d((7, 7)) stays:
    on the official 64x64 inputs the 2x2 map is spread to 7x7, as in the official run.
    """

    MIN_SIZE = 32  # five 2x2 max-pools

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from torchvision.models import vgg19_bn  # lazy: torchvision.models takes ~1 s to import

        self.encoder = vgg19_bn(weights=None)
        self.encoder.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.2),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.2),
        )
        normal_init(self.encoder.classifier, 0.005)
        self.feature_dim = 4096
        self.classifier = nn.Linear(4096, num_classes)
        normal_init(self.classifier, 0.005)

    def features(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class ResNet50(FeatureNet):
    """SSR's Clothing1M network: torchvision ResNet-50 without `fc`, a 2048-d feature.

    As `main_clothing1m.py` (commit 849530dd) l.167-187: `encoder = resnet50(pretrained=True)`,
    `encoder.fc = Identity()` (l.177), `classifier = Linear(2048, C)` (l.175) with N(0, 0.001)
    weights and zero bias (`init_weights` l.170-173, applied l.187).

    `pretrained=True` is torchvision's ImageNet `IMAGENET1K_V1` ResNet-50 weights, the file
    `resnet50-0676ba61.pth` (torchvision >= 0.13 maps `pretrained=True` to
    `ResNet50_Weights.IMAGENET1K_V1`; older releases served the V1 weights as
    `resnet50-19c8e357.pth`). Nothing is downloaded here: pass the path of such a file as the
    option `weights` to reproduce the official start; by default the encoder is randomly
    initialised (torchvision's init). Any torchvision ResNet-50 state dict is accepted (the V2
    file `resnet50-11ad3fa6.pth` too, though it is not what SSR used); its `fc.*` keys are
    ignored, every other key must match.
    """

    def __init__(self, num_classes: int, weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet50  # lazy: torchvision.models takes ~1 s to import

        self.encoder = resnet50(weights=None)
        self.encoder.fc = nn.Identity()
        if weights is not None:
            _load_resnet50(self.encoder, weights)
        self.feature_dim = 2048
        self.classifier = nn.Linear(2048, num_classes)
        normal_init(self.classifier, 0.001)

    def features(self, x: Tensor) -> Tensor:
        return self.encoder(x)


def _load_resnet50(encoder: nn.Module, weights: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet-50 state dict file into `encoder` (whose `fc` is Identity),
    ignoring `fc.*`; checked key by key and shape by shape so that a wrong file is one
    ConfigError line. Files saved before PyTorch 0.4.1 lack BN's `num_batches_tracked`, which
    BatchNorm's loader fills in; so those keys may be missing."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"network resnet50: weights file {path} does not exist; download torchvision's "
            "ImageNet ResNet-50 weights (resnet50-0676ba61.pth) there or drop "
            "network_options.weights"
        )
    bad = f"network resnet50: weights file {path} is not a torchvision ResNet-50 state dict"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle, zip or unpickling-policy error: all mean a wrong file
        raise ConfigError(f"{bad} (torch.load failed: {type(error).__name__})") from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{bad} (it holds a {type(state).__name__}, not names -> tensors)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = encoder.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ConfigError(
            f"{bad} ({len(missing)} keys missing, {len(unexpected)} unexpected; first: {first})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ConfigError(
                f"{bad} ({key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)})"
            )
    encoder.load_state_dict(state)


class InceptionResNetV2(FeatureNet):
    """SSR's WebVision network: Inception-ResNet-v2 from timm, random init, a 1536-d feature.

    `main_webvision.py` (commit 849530dd) l.173-176: `encoder = InceptionResNetV2(num_classes)`
    from the repository's `models/inceptionresnetv2.py` (in the layout of Cadene's
    pretrainedmodels port; it loads no weights and has no init code, so PyTorch's default init),
    `last_linear` replaced by Identity, and `classifier = Linear(1536, C)` with PyTorch's
    default init (that script has no `init_weights`).

    `timm.create_model("inception_resnet_v2", pretrained=False, num_classes=0)` is the same
    network: measured with timm 1.0.31, it has the same 54,306,464 parameters (official
    `last_linear` removed), the same 1304 state-dict keys with the same names and shapes in the
    same order, BatchNorm eps 0.001 / momentum 0.1 everywhere, and no custom init either; with
    the official weights copied in, the features agree at 299x299 to 1.3e-8. So an official
    encoder checkpoint loads into `self.encoder` unchanged. One difference: the official pools
    with a fixed `AvgPool2d(8, count_include_pad=False)` (l.275), timm with global average
    pooling. They agree on 8x8 maps (inputs 299 to 330, the official 299x299 among them); the
    official fails below 299 and pools only the top-left 8x8 window from 331 up (a shape error
    from 16x16 maps on), while timm pools the whole map at any size from 75x75.
    """

    MIN_SIZE = 75

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as error:
            raise ConfigError(
                "network inception_resnet_v2 needs timm: pip install 'nlbench[timm]'"
            ) from error
        self.encoder = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=0)
        self.feature_dim = 1536
        self.classifier = nn.Linear(1536, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.encoder(x)


def _min_size(name: str, image_size: int, minimum: int, why: str) -> None:
    if image_size < minimum:
        raise ConfigError(
            f"network {name} needs images of at least {minimum}x{minimum} ({why}); got "
            f"{image_size}x{image_size}"
        )


def vgg19_bn_ssr(num_classes: int, in_channels: int, image_size: int) -> FeatureNet:
    _rgb_only("vgg19_bn_ssr", in_channels)
    _min_size("vgg19_bn_ssr", image_size, VGG19BNSSR.MIN_SIZE, "five max-pools")
    return VGG19BNSSR(num_classes)


def resnet50(
    num_classes: int,
    in_channels: int,
    image_size: int,
    *,
    weights: str | os.PathLike[str] | None = None,
) -> FeatureNet:
    _rgb_only("resnet50", in_channels)
    return ResNet50(num_classes, weights)


def inception_resnet_v2(num_classes: int, in_channels: int, image_size: int) -> FeatureNet:
    _rgb_only("inception_resnet_v2", in_channels)
    _min_size("inception_resnet_v2", image_size, InceptionResNetV2.MIN_SIZE,
              "its stem and two reductions use unpadded convs")  # fmt: skip
    return InceptionResNetV2(num_classes)
