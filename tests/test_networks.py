"""Networks: the features/classifier split, SSR's block quirk, the official size, cnn9's dropout."""

import pytest
import torch
import torch.nn.functional as F

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.networks import PreActBlock, build_network

# (name, options that keep the test fast, in_channels, image_size)
CASES = [
    ("mlp", {}, 3, 32),
    ("mlp", {"hidden": 16}, 1, 8),
    ("small_cnn", {}, 3, 32),
    ("small_cnn", {"width": 0.25}, 1, 8),
    ("preact_resnet18", {}, 3, 32),
    ("preact_resnet18", {"width": 4}, 1, 8),
    ("cnn9", {"width": 0.125}, 3, 32),
    ("cnn9", {"width": 0.125}, 1, 28),
    ("resnet34", {"width": 4}, 3, 32),
    ("resnet34", {"width": 4}, 1, 8),
]


@pytest.mark.parametrize(("name", "options", "channels", "size"), CASES)
def test_shapes_and_feature_split(name, options, channels, size):
    torch.manual_seed(0)
    net = build_network(name, num_classes=7, in_channels=channels, image_size=size, **options)
    net.eval()
    x = torch.randn(3, channels, size, size)
    with torch.no_grad():
        feats = net.features(x)
        logits = net(x)
    assert feats.shape == (3, net.feature_dim)
    assert logits.shape == (3, 7)
    assert isinstance(net.classifier, torch.nn.Linear)
    assert net.classifier.in_features == net.feature_dim
    torch.testing.assert_close(logits, net.classifier(feats))


def test_preact_resnet18_feature_is_512():
    assert build_network("preact_resnet18", 10, 3, 32).feature_dim == 512


def _randomise_bn(block: PreActBlock) -> None:
    """Non-trivial BN statistics so relu(bn1(x)) differs clearly from x."""
    for bn in (block.bn1, block.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize(("in_planes", "planes", "stride"), [(8, 8, 1), (8, 16, 2)])
def test_preact_shortcut_carries_the_preactivated_input(in_planes, planes, stride):
    torch.manual_seed(0)
    block = PreActBlock(in_planes, planes, stride)
    _randomise_bn(block)
    block.eval()
    x = torch.randn(2, in_planes, 8, 8)
    seen = []
    block.shortcut.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        out = block(x)
        a = F.relu(block.bn1(x))
        residual = block.conv2(F.relu(block.bn2(block.conv1(a))))
        shortcut = a if stride == 1 else F.conv2d(a, block.shortcut.weight, stride=stride)
    torch.testing.assert_close(seen[0], a)
    torch.testing.assert_close(out, residual + shortcut)
    if stride == 1:  # the textbook pre-activation block (shortcut on x) gives another answer
        assert not torch.allclose(out, residual + x)


def _official_preresnet18_parameters(num_classes: int) -> int:
    """SSR's PreResNet18 counted layer by layer: convs have no bias, a BN has weight + bias."""
    total = 3 * 64 * 9 + 2 * 64  # stem conv3x3 + BN
    in_planes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block_stride in (stride, 1):
            total += 2 * in_planes + in_planes * planes * 9  # bn1, conv1
            total += 2 * planes + planes * planes * 9  # bn2, conv2
            if block_stride != 1 or in_planes != planes:
                total += in_planes * planes  # 1x1 shortcut conv
            in_planes = planes
    return total + 512 * num_classes + num_classes  # classifier


def test_preact_resnet18_parameter_count_matches_the_official_model():
    net = build_network("preact_resnet18", 10, 3, 32)
    count = sum(p.numel() for p in net.parameters())
    assert _official_preresnet18_parameters(10) == 11_171_274
    assert count == 11_171_274


def test_cnn9_has_no_dropout_by_default_and_the_option_drops_in_training_only():
    """The published runs had none (functional dropout2d was a no-op under PyTorch 0.3): by
    default two train-mode forwards agree; with the option, they differ in training only."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    plain = build_network("cnn9", 10, 3, 32, width=0.125).train()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), plain(x))
    dropped = build_network("cnn9", 10, 3, 32, width=0.125, dropout=0.25)
    with torch.no_grad():
        assert not torch.allclose(dropped.train()(x), dropped(x))
        torch.testing.assert_close(dropped.eval()(x), dropped(x))


def test_cnn9_official_layout():
    net = build_network("cnn9", 10, 1, 28)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 128, 256, 256, 256, 512, 256, 128]
    assert [c.padding for c in convs] == [(1, 1)] * 6 + [(0, 0)] * 3
    assert all(c.bias is not None for c in convs)
    assert net.feature_dim == 128


def test_cnn9_rejects_images_too_small():
    with pytest.raises(ConfigError, match="small_cnn"):
        build_network("cnn9", 10, 1, 8)


def test_unknown_network_and_option_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'small_cnn'"):
        build_network("small_cn", 10, 3, 32)
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        build_network("preact_resnet18", 10, 3, 32, widht=8)


def _official_resnet34_parameters(num_classes: int) -> int:
    """The reference port's CIFAR ResNet-34 counted layer by layer (convs without bias, BN weight +
    bias, a 1x1 conv + BN shortcut where the shape changes)."""
    total = 3 * 64 * 9 + 2 * 64
    in_planes = 64
    for planes, stride, count in ((64, 1, 3), (128, 2, 4), (256, 2, 6), (512, 2, 3)):
        for block_stride in [stride] + [1] * (count - 1):
            total += in_planes * planes * 9 + 2 * planes + planes * planes * 9 + 2 * planes
            if block_stride != 1 or in_planes != planes:
                total += in_planes * planes + 2 * planes
            in_planes = planes
    return total + 512 * num_classes + num_classes


def test_resnet34_matches_the_reference_model():
    net = build_network("resnet34", 10, 3, 32)
    assert sum(p.numel() for p in net.parameters()) == _official_resnet34_parameters(10)
    assert _official_resnet34_parameters(10) == 21_282_122
    blocks = [m for m in net.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 16 and net.feature_dim == 512
