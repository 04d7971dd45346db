"""SSR's real-world-dataset networks: official sizes, the feature split, local ResNet-50 weights.

The pinned parameter counts were measured outside this repository against SSR's official code
(MrChenFeng/SSR_BMVC2022, commit 849530dd), with torchvision 0.29 and timm 1.0.31:
* vgg19_bn_ssr: `vgg19_bn(weights=None)` with the classifier of `main_animal10.py` l.194-201,
  plus `Linear(4096, 10)` (l.209): 139,581,248 + 40,970 = 139,622,218.
* resnet50: `resnet50(weights=None)` with `fc = Identity()` (`main_clothing1m.py` l.177), plus
  `Linear(2048, 14)` (l.175): 23,508,032 + 28,686 = 23,536,718.
* inception_resnet_v2: the official `models/inceptionresnetv2.py` with `last_linear = Identity()`
  (`main_webvision.py` l.173-175) has 54,306,464 parameters, as timm's `num_classes=0` model;
  plus `Linear(1536, 50)` (l.176): 54,383,314.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.networks import build_network


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return build_network("vgg19_bn_ssr", num_classes=10, in_channels=3, image_size=64)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_network("resnet50", num_classes=14, in_channels=3, image_size=224)


def _check_split(net, classes: int, size: int, dim: int) -> None:
    net.eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats = net.features(x)
        logits = net(x)
    assert net.feature_dim == dim
    assert feats.shape == (2, dim)
    assert logits.shape == (2, classes)
    assert isinstance(net.classifier, torch.nn.Linear)
    assert net.classifier.in_features == dim
    torch.testing.assert_close(logits, net.classifier(feats))


def test_vgg19_bn_ssr_matches_the_official_model(vgg):
    assert _count(vgg) == 139_622_218
    assert _count(vgg.encoder) == 139_581_248
    head = vgg.encoder.classifier
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout"] * 2
    assert [m.p for m in head if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2]
    for linear in (head[0], head[3], vgg.classifier):  # init_weights: N(0, 0.005), bias 0
        assert torch.all(linear.bias == 0)
        assert abs(linear.weight.std().item() - 0.005) < 2.5e-4
    _check_split(vgg, 10, 64, 4096)


def test_resnet50_matches_the_official_model(resnet):
    assert _count(resnet) == 23_536_718
    assert isinstance(resnet.encoder.fc, torch.nn.Identity)
    assert torch.all(resnet.classifier.bias == 0)  # init_weights: N(0, 0.001), bias 0
    assert abs(resnet.classifier.weight.std().item() - 0.001) < 1e-4
    _check_split(resnet, 14, 64, 2048)  # adaptive pooling: small inputs keep the test fast


def test_resnet50_loads_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(2)
    source = torchvision.models.resnet50().state_dict()
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(source, path)
    net = build_network("resnet50", 14, 3, 64, weights=str(path))
    loaded = net.encoder.state_dict()
    assert not any(key.startswith("fc.") for key in loaded)
    assert all(torch.equal(loaded[key], source[key]) for key in loaded)
    assert torch.equal(net.encoder.conv1.weight, source["conv1.weight"])
    # files from before PyTorch 0.4.1 have no num_batches_tracked: BatchNorm fills them in
    old = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, path)
    net = build_network("resnet50", 14, 3, 64, weights=path)
    assert torch.equal(net.encoder.layer4[2].conv3.weight, source["layer4.2.conv3.weight"])


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_resnet50_missing_weights_file_is_one_line(tmp_path):
    path = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(ConfigError) as error:
        build_network("resnet50", 14, 3, 64, weights=str(path))
    message = _one_line(error)
    assert str(path) in message and "does not exist" in message
    assert "network_options.weights" in message


def test_resnet50_wrong_weights_file_is_one_line(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a torchvision ResNet-50 state dict") as error:
        build_network("resnet50", 14, 3, 64, weights=junk)
    assert str(junk) in _one_line(error)
    other = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(ConfigError, match="not a torchvision ResNet-50 state dict") as error:
        build_network("resnet50", 14, 3, 64, weights=other)
    _one_line(error)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ConfigError, match="holds a list, not names -> tensors") as error:
        build_network("resnet50", 14, 3, 64, weights=listed)
    _one_line(error)


@pytest.mark.parametrize("name", ["vgg19_bn_ssr", "resnet50", "inception_resnet_v2"])
def test_only_rgb_images(name):
    with pytest.raises(ConfigError, match="in_channels 3") as error:
        build_network(name, 10, 1, 299)
    _one_line(error)


def test_too_small_images_and_unknown_options_are_config_errors():
    with pytest.raises(ConfigError, match="at least 32x32"):
        build_network("vgg19_bn_ssr", 10, 3, 28)
    with pytest.raises(ConfigError, match="at least 75x75"):
        build_network("inception_resnet_v2", 10, 3, 64)
    with pytest.raises(ConfigError, match="options: weights"):
        build_network("resnet50", 10, 3, 64, weight="x.pth")
    with pytest.raises(ConfigError, match="options: none"):
        build_network("vgg19_bn_ssr", 10, 3, 64, weights="x.pth")


def test_inception_resnet_v2_without_timm_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(ConfigError) as error:
        build_network("inception_resnet_v2", 50, 3, 299)
    assert _one_line(error) == "network inception_resnet_v2 needs timm: pip install 'nlbench[timm]'"


def test_inception_resnet_v2_matches_the_official_model():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    net = build_network("inception_resnet_v2", num_classes=50, in_channels=3, image_size=299)
    assert _count(net) == 54_383_314
    assert _count(net.encoder) == 54_306_464
    _check_split(net, 50, 75, 1536)  # 75x75 is the smallest input it accepts
