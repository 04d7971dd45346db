"""Device-side augmentation: crop/flip semantics, and AutoAugment against PIL run the official way.

The PIL reference below re-expresses SSR's utils/autoaugment.py `SubPolicy` lambdas, so each
batched op is checked against what SSR's DataLoader would have produced for the same choices.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from nlbench.methods.toolkit.autoaugment import (
    CIFAR10_POLICY,
    MAGNITUDES,
    OPS,
    SIGNED,
    PolicyDraw,
    apply_policy,
    cifar10_autoaugment,
    draw_policy,
    op_values,
)
from nlbench.methods.toolkit.views import make_view, normalise, random_crop_flip

MEAN = torch.tensor([0.4914, 0.4822, 0.4465])
STD = torch.tensor([0.2023, 0.1994, 0.2010])
AFFINE_OPS = ("shearX", "shearY", "translateX", "translateY", "rotate")


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """Results do not depend on the thread count, but time does: on a shared, oversubscribed
    CPU, torch's OpenMP barriers on these ~40k-element tensors wait out whole scheduler slices
    (measured: 1.6 s per bicubic shear with 2 threads, 6 ms with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(n: int, seed: int, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Smooth structure plus noise, each image with its own grey range (so autocontrast and
    equalize have work to do)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 6, 6, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    noise = torch.rand(n, channels, size, size, generator=g)
    lo = torch.rand(n, 1, 1, 1, generator=g) * 0.3
    span = 0.3 + torch.rand(n, 1, 1, 1, generator=g) * 0.7
    x = (lo + span * (0.8 * smooth + 0.2 * noise)) * 255
    return x.round().clamp(0, 255).to(torch.uint8)


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = image.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def _from_pil(image: Image.Image) -> torch.Tensor:
    array = np.array(image)
    return torch.from_numpy(array.reshape(*array.shape[:2], -1)).permute(2, 0, 1)


def _rotate_with_fill(img: Image.Image, angle: float) -> Image.Image:
    rotated = img.convert("RGBA").rotate(angle)
    grey = Image.new("RGBA", rotated.size, (128,) * 4)
    return Image.composite(rotated, grey, rotated).convert(img.mode)


def _pil_op(name: str, img: Image.Image, m: float, sign: float) -> Image.Image:
    """The official lambda for `name` with table magnitude `m` and drawn `sign`, computing its
    PIL argument itself. An "L" image gets fill 128: PIL rejects (128, 128, 128) for one band."""
    fill = (128, 128, 128) if img.mode == "RGB" else 128
    affine = Image.Transform.AFFINE
    bicubic = Image.Resampling.BICUBIC
    s = m * sign
    ops = {
        "shearX": lambda: img.transform(
            img.size, affine, (1, s, 0, 0, 1, 0), bicubic, fillcolor=fill
        ),
        "shearY": lambda: img.transform(
            img.size, affine, (1, 0, 0, s, 1, 0), bicubic, fillcolor=fill
        ),
        "translateX": lambda: img.transform(
            img.size, affine, (1, 0, m * img.size[0] * sign, 0, 1, 0), fillcolor=fill
        ),
        "translateY": lambda: img.transform(
            img.size, affine, (1, 0, 0, 0, 1, m * img.size[1] * sign), fillcolor=fill
        ),
        "rotate": lambda: _rotate_with_fill(img, m),
        "color": lambda: ImageEnhance.Color(img).enhance(1 + s),
        "posterize": lambda: ImageOps.posterize(img, int(m)),
        "solarize": lambda: ImageOps.solarize(img, m),
        "contrast": lambda: ImageEnhance.Contrast(img).enhance(1 + s),
        "sharpness": lambda: ImageEnhance.Sharpness(img).enhance(1 + s),
        "brightness": lambda: ImageEnhance.Brightness(img).enhance(1 + s),
        "autocontrast": lambda: ImageOps.autocontrast(img),
        "equalize": lambda: ImageOps.equalize(img),
        "invert": lambda: ImageOps.invert(img),
    }
    return ops[name]()


def _pil_subpolicies(images: torch.Tensor, draw: PolicyDraw) -> torch.Tensor:
    """Per image, SubPolicy.__call__ of the official file with the drawn coins and signs."""
    out = []
    for i, image in enumerate(images):
        img = _to_pil(image)
        for step in range(2):
            if draw.applied[i, step]:
                _, name, index = CIFAR10_POLICY[int(draw.policy[i])][step]
                img = _pil_op(name, img, MAGNITUDES[name][index], float(draw.sign[i, step]))
        out.append(_from_pil(img))
    return torch.stack(out)


def _ours_and_pil(name: str, x: torch.Tensor, index: int, sign: float) -> tuple[torch.Tensor, ...]:
    m = float(MAGNITUDES[name][index])
    magnitude = torch.full((len(x),), m, dtype=torch.float64)
    values = op_values(name, magnitude, torch.full_like(magnitude, sign), *x.shape[-2:])
    reference = torch.stack([_from_pil(_pil_op(name, _to_pil(im), m, sign)) for im in x])
    return OPS[name](x, values), reference


# ---------------------------------------------------------------- crop and flip


@pytest.mark.parametrize("channels", [1, 3])
def test_crop_flip_keeps_shape_dtype(channels: int) -> None:
    x = _images(5, 0, channels)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8


def test_crop_shifts_by_at_most_padding_and_flips_about_half() -> None:
    n, size, pad = 2000, 32, 4
    coords = torch.arange(size, dtype=torch.uint8) + 100
    x = torch.stack([coords[:, None].expand(size, size), coords[None, :].expand(size, size)])
    x = x.unsqueeze(0).expand(n, 2, size, size).contiguous()
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=pad).long()
    inside = out[:, 0] > 0
    assert torch.equal(inside, out[:, 1] > 0), "padding must be zero in every channel"
    assert inside.sum((1, 2)).min() >= (size - pad) ** 2
    i = torch.arange(size)
    dy = torch.where(inside, out[:, 0] - 100 - i[:, None], 99).amin((1, 2))
    flipped = out[:, 1, :, 1:].ge(out[:, 1, :, :-1]).logical_not() & inside[:, :, 1:]
    flipped = flipped.any((1, 2))
    col = torch.where(flipped[:, None, None], size - 1 - i, i).expand(n, size, size)
    dx = torch.where(inside, out[:, 1] - 100 - col, 99).amin((1, 2))
    for d in (dy, dx):
        assert d.abs().max() <= pad
        assert torch.bincount(d + pad, minlength=2 * pad + 1).min() > n / (2 * pad + 1) * 0.7
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    for k in range(0, n, 97):
        crop = padded[k, :, pad + dy[k] : pad + dy[k] + size, pad + dx[k] : pad + dx[k] + size]
        assert torch.equal(out[k], (crop.flip(-1) if flipped[k] else crop).long())
    assert abs(flipped.float().mean().item() - 0.5) < 0.05


def test_same_seed_same_views_other_seed_other_views() -> None:
    x = _images(16, 2)

    def views(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [
            random_crop_flip(x, g),
            cifar10_autoaugment(x, g),
            make_view(x, "strong", "crop_flip", MEAN, STD, g),
        ]

    for a, b, c in zip(views(7), views(7), views(8)):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


# ---------------------------------------------------------------- AutoAugment ops vs PIL


def _cases() -> list[tuple[str, int, float]]:
    indices = {"solarize": (2, 5, 8), "autocontrast": (0,), "equalize": (0,), "invert": (0,)}
    cases = []
    for name in OPS:
        for index in indices.get(name, (2, 9)):
            for sign in (1.0, -1.0) if name in SIGNED else (1.0,):
                cases.append((name, index, sign))
    return cases


@pytest.mark.parametrize(("name", "index", "sign"), _cases())
def test_op_matches_pil(name: str, index: int, sign: float) -> None:
    x = _images(12, 3)
    ours, reference = _ours_and_pil(name, x, index, sign)
    diff = (ours.int() - reference.int()).abs()
    if name in AFFINE_OPS:
        assert (diff > 0).float().mean() < 0.01
    else:
        assert diff.float().mean() < 0.05 and diff.max() <= 1
    assert not torch.equal(ours, x), "every case must change the images, or it tests nothing"


@pytest.mark.parametrize("name", list(OPS))
def test_op_on_one_channel_matches_pil_l_mode(name: str) -> None:
    x = _images(6, 4, channels=1)
    ours, reference = _ours_and_pil(name, x, 7, -1.0)
    assert ours.shape == x.shape
    assert (ours != reference).float().mean() < 0.01


@pytest.mark.parametrize("name", AFFINE_OPS)
def test_affine_op_on_non_square_images_matches_pil(name: str) -> None:
    x = _images(4, 10, size=32)[:, :, :24, :]
    ours, reference = _ours_and_pil(name, x.contiguous(), 8, -1.0)
    assert (ours != reference).float().mean() < 0.01


def test_tables_are_the_official_ones() -> None:
    assert len(CIFAR10_POLICY) == 25
    assert MAGNITUDES["posterize"].tolist() == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert MAGNITUDES["solarize"][0] == 256 and MAGNITUDES["solarize"][-1] == 0
    assert MAGNITUDES["translateX"][-1] == 150 / 331 and MAGNITUDES["shearY"][-1] == 0.3
    assert MAGNITUDES["rotate"][-1] == 30 and MAGNITUDES["brightness"][-1] == 0.9
    one, minus = torch.ones(1, dtype=torch.float64), -torch.ones(1, dtype=torch.float64)
    assert op_values("rotate", 10 * one, minus, 32, 32).item() == 10, "rotate takes no sign"
    assert op_values("translateY", 0.5 * one, minus, 20, 32).item() == -10
    assert op_values("contrast", 0.5 * one, minus, 32, 32).item() == 0.5


# ---------------------------------------------------------------- whole policy


def test_policy_matches_official_subpolicies_in_pil() -> None:
    x = _images(100, 5)
    g = torch.Generator().manual_seed(3)
    signs = draw_policy(len(x), g).sign
    all_fire = torch.ones(len(x), 2, dtype=torch.bool)
    every_step = PolicyDraw(torch.arange(len(x)) % 25, all_fire, signs)
    random_steps = draw_policy(len(x), g)
    for draw in (every_step, random_steps):
        ours = apply_policy(x, draw)
        reference = _pil_subpolicies(x, draw)
        assert (ours != reference).float().mean() < 0.002


def test_autoaugment_draws_a_sub_policy_per_image_from_its_generator() -> None:
    """One image repeated: each copy gets its own sub-policy, so the copies mostly differ; the same
    seed repeats every draw, another seed does not (a batch-wide policy or an ignored generator
    would fail here)."""
    x = _images(1, 6).expand(64, -1, -1, -1).contiguous()
    out = cifar10_autoaugment(x, torch.Generator().manual_seed(11))
    distinct = {tuple(img.flatten().tolist()) for img in out}
    assert len(distinct) > 10
    again = cifar10_autoaugment(x, torch.Generator().manual_seed(11))
    other = cifar10_autoaugment(x, torch.Generator().manual_seed(12))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_subpolicy_and_step_frequencies() -> None:
    n = 250_000
    draw = draw_policy(n, torch.Generator().manual_seed(0))
    share = torch.bincount(draw.policy, minlength=25).double() / n
    assert (share - 1 / 25).abs().max() < 5 * (1 / 25 * 24 / 25 / n) ** 0.5
    for k, sub in enumerate(CIFAR10_POLICY):
        chosen = draw.policy == k
        for step, (p, _, _) in enumerate(sub):
            rate = draw.applied[chosen, step].double().mean().item()
            assert abs(rate - p) < 5 * (max(p * (1 - p), 1e-4) / chosen.sum().item()) ** 0.5
    assert abs(draw.sign.mean().item()) < 0.01
    assert set(draw.sign.unique().tolist()) == {-1.0, 1.0}


def test_autoaugment_rejects_bad_input() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="uint8"):
        cifar10_autoaugment(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), g)
    with pytest.raises(ValueError, match="uint8"):
        cifar10_autoaugment(torch.zeros(2, 3, 8, 8), g)


# ---------------------------------------------------------------- make_view


def test_constant_image_maps_to_normalised_value() -> None:
    x = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    expected = ((128 / 255 - MEAN) / STD).view(1, 3, 1, 1).expand(4, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    for view, augment in (("none", "crop_flip"), ("weak", "none")):
        out = make_view(x, view, augment, MEAN, STD, g)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    weak = make_view(x, "weak", "crop_flip", MEAN, STD, g)
    centre = weak[:, :, 4:28, 4:28]
    torch.testing.assert_close(centre, expected[:, :, 4:28, 4:28], rtol=0, atol=1e-6)


def test_normalise_follows_torchvision_order() -> None:
    x = _images(3, 8)
    from torchvision.transforms import v2

    reference = v2.Normalize(MEAN.tolist(), STD.tolist())(x.float() / 255)
    assert torch.equal(normalise(x, MEAN, STD), reference)


@pytest.mark.parametrize("channels", [1, 3])
def test_strong_view_shape_layout_and_range(channels: int) -> None:
    x = _images(64, 9, channels)
    mean, std = MEAN[:channels], STD[:channels]
    g = torch.Generator().manual_seed(0)
    out = make_view(x, "strong", "crop_flip", mean, std, g, channels_last=True)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    low, high = ((0 - mean) / std).min(), ((1 - mean) / std).max()
    assert out.min() >= low - 1e-5 and out.max() <= high + 1e-5


def test_make_view_names_the_bad_argument() -> None:
    x = _images(2, 0)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="did you mean 'strong'"):
        make_view(x, "strnog", "crop_flip", MEAN, STD, g)
    with pytest.raises(ValueError, match="unknown augment"):
        make_view(x, "weak", "cutout", MEAN, STD, g)


# ---------------------------------------------------------------- real-world recipes' crops


def _gradient(batch: int, side: int) -> torch.Tensor:
    """Images whose every pixel value says where it is (no two windows alike)."""
    rows = torch.arange(side).view(side, 1).expand(side, side)
    cols = torch.arange(side).view(1, side).expand(side, side)
    image = torch.stack([rows, cols, (rows + cols) // 2]).to(torch.uint8)
    return image.expand(batch, 3, side, side).clone()


def test_random_crop_to_224_takes_a_window_of_the_256_square_or_its_mirror():
    from nlbench.methods.toolkit.views import RECIPES

    x = _gradient(64, 256)
    out = RECIPES["clothing1m"].weak(x, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 224, 224)
    tops = out[:, 0, 0, 0].long()
    flipped = out[:, 1, 0, 0] > out[:, 1, 0, -1]
    lefts = torch.where(flipped, out[:, 1, 0, -1], out[:, 1, 0, 0]).long()
    assert tops.max() <= 32 and lefts.max() <= 32 and len(set(tops.tolist())) > 10
    assert 0.25 < flipped.float().mean() < 0.75
    for i in range(8):
        window = x[i, :, tops[i] : tops[i] + 224, lefts[i] : lefts[i] + 224]
        assert torch.equal(out[i], window.flip(2) if flipped[i] else window)
    test = RECIPES["clothing1m"].test(x)
    assert torch.equal(test, x[:, :, 16:240, 16:240])  # CenterCrop(224) of 256


def test_random_resized_crop_keeps_torchvisions_box_rule_and_resamples_close_to_resize():
    from nlbench.methods.toolkit.views import random_resized_crop_flip

    x = _gradient(32, 64)
    g = torch.Generator().manual_seed(0)
    whole = random_resized_crop_flip(x, g, size=48, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    reference = torchvision_resize(x, 48)
    mirrored = reference.flip(3)
    for i in range(len(x)):
        error = min((whole[i].float() - r[i].float()).abs().mean() for r in (reference, mirrored))
        assert error < 1.5  # roi_align's bilinear average vs antialiased resize, uint8 units
    crops = random_resized_crop_flip(x, torch.Generator().manual_seed(1), size=48)
    assert crops.shape == (32, 3, 48, 48) and crops.dtype == torch.uint8
    spans = crops[:, 0].float().amax(dim=(1, 2)) - crops[:, 0].float().amin(dim=(1, 2))
    assert spans.min() < 40 < spans.max()  # boxes of many sizes, from 8 % of the area up


def torchvision_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    import torchvision.transforms.v2.functional as tvf

    return tvf.resize(images, [size, size], antialias=True)
