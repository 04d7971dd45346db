"""Augmented views of whole uint8 batches, built on the device where the images live, by name.

The engine keeps the training set on the device as uint8 NCHW and builds each step's views with
`make_view`: no DataLoader, no PIL, no per-sample Python loop. All randomness is drawn from a CPU
`torch.Generator` and moved to the device, so a run reproduces from its seed on any device and the
device never waits on the host.

A view is a registered function (uint8 batch, the dataset's weak augmentation, generator) -> uint8
batch; `make_view` normalises its output. Built in (as SSR's main_cifar.py l.195-205 builds them):

* "none": the images as they are (ToTensor + Normalize).
* "weak": the dataset's augmentation ("crop_flip": RandomCrop(32, padding=4) +
  RandomHorizontalFlip; "none": nothing).
* "strong": the weak augmentation, then CIFAR-10 AutoAugment (`autoaugment.cifar10_autoaugment`),
  one sub-policy per image. It also runs on one-channel images, with PIL's "L"-image semantics.

* "autoaugment_cutout": SOP's second view (its `data_loader/data_loaders.py`): AutoAugment first,
  then the weak augmentation, normalisation, and Cutout of one square of half the image side
  (16x16 on CIFAR) after normalisation (`cutout`), so the cut square is 0 in normalised units.

A method that needs another view registers it (`@register_view("mine")`, with an optional step
on the normalised images) and names it in its streams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nlbench.errors import did_you_mean
from nlbench.methods.toolkit.autoaugment import cifar10_autoaugment


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """torchvision RandomCrop(size=(H, W), padding, fill=0) then RandomHorizontalFlip(0.5), per
    sample, on a uint8 batch [B, C, H, W]: two gathers on the zero-padded batch with per-sample
    row and column indices (a flip is just reversed column indices)."""
    b, c, h, w = images.shape
    offsets = torch.randint(2 * padding + 1, (2, b), generator=generator).to(images.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device).expand(b, w)
    cols = offsets[1, :, None] + torch.where(flip[:, None], cols.flip(1), cols)
    out = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * padding))
    return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def _identity(images: Tensor, generator: torch.Generator) -> Tensor:
    return images


AUGMENTS: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "crop_flip": random_crop_flip,
    "none": _identity,
}
"""A dataset's weak augmentation, by the name its loader gives (`Dataset.augment`)."""

ViewFn = Callable[[Tensor, str, torch.Generator], Tensor]
PostFn = Callable[[Tensor, torch.Generator], Tensor]
VIEWS: dict[str, ViewFn] = {}
AFTER_NORMALISE: dict[str, PostFn] = {}


def register_view(name: str, after_normalise: PostFn | None = None) -> Callable[[ViewFn], ViewFn]:
    """Decorator: make `fn(images_uint8, augment, generator) -> images_uint8` the view `name`;
    `after_normalise(images_float, generator)`, when given, runs on its normalised output."""

    def wrap(fn: ViewFn) -> ViewFn:
        if name in VIEWS and VIEWS[name] is not fn:
            raise ValueError(f"view '{name}' is registered twice")
        VIEWS[name] = fn
        if after_normalise is not None:
            AFTER_NORMALISE[name] = after_normalise
        return fn

    return wrap


def cutout(images: Tensor, generator: torch.Generator, length: int | None = None) -> Tensor:
    """Cutout (DeVries & Taylor 2017) with one hole per image: a `length`-square centred on a
    uniformly drawn pixel, clipped at the borders, multiplied by 0. `length` None is half the
    image side: SOP's 16 on 32x32 CIFAR, 4 on 8x8 digits (16 would erase them whole)."""
    b, _, h, w = images.shape
    length = length or h // 2
    centre = torch.stack(
        [torch.randint(h, (b,), generator=generator), torch.randint(w, (b,), generator=generator)]
    ).to(images.device)
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    half = length // 2
    inside_rows = (rows >= (centre[0, :, None] - half).clamp(0, h)) & (
        rows < (centre[0, :, None] + half).clamp(0, h)
    )
    inside_cols = (cols >= (centre[1, :, None] - half).clamp(0, w)) & (
        cols < (centre[1, :, None] + half).clamp(0, w)
    )
    hole = inside_rows[:, :, None] & inside_cols[:, None, :]
    return images * (~hole)[:, None].to(images.dtype)


@register_view("none")
def no_augmentation(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return images


@register_view("weak")
def weak_view(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    if augment not in AUGMENTS:
        hint = did_you_mean(augment, AUGMENTS)
        raise ValueError(f"unknown augment '{augment}'{hint}; choose from {tuple(AUGMENTS)}")
    return AUGMENTS[augment](images, generator)


@register_view("strong")
def strong_view(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return cifar10_autoaugment(weak_view(images, augment, generator), generator)


@register_view("autoaugment_cutout", after_normalise=cutout)
def autoaugment_then_weak(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return weak_view(cifar10_autoaugment(images, generator), augment, generator)


def normalise(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """ToTensor + Normalize in torchvision's order (x / 255, then - mean, then / std), float32."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def make_view(
    images_uint8: Tensor,
    view: str,
    augment: str,
    mean: Tensor,
    std: Tensor,
    generator: torch.Generator,
    channels_last: bool = False,
) -> Tensor:
    """One registered view of a uint8 batch [B, C, H, W] as normalised float32.

    `augment` names the dataset's weak augmentation ("crop_flip" or "none"); `generator` is a
    CPU generator; `channels_last` returns NHWC memory for convolutions that prefer it.
    """
    if view not in VIEWS:
        raise ValueError(
            f"unknown view '{view}'{did_you_mean(view, VIEWS)}; registered: {', '.join(VIEWS)}"
        )
    out = normalise(VIEWS[view](images_uint8, augment, generator), mean, std)
    if view in AFTER_NORMALISE:
        out = AFTER_NORMALISE[view](out, generator)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
