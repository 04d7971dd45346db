"""Augmented views of whole uint8 batches, built on the device where the images live, by name.

The engine hands each step's images over as uint8 NCHW on the device (held there, or decoded
from disk by its workers) and builds the views with `make_view`: no PIL, no per-sample Python
loop. All randomness is drawn from a CPU `torch.Generator` and moved to the device, so a run
reproduces from its seed on any device and the device never waits on the host.

A view is a registered function (uint8 batch, the dataset's augmentation recipe, generator) ->
uint8 batch; `make_view` normalises its output. Built in (as SSR's main_cifar.py l.203-213
builds them):

* "none": the images as the dataset's recipe tests them (ToTensor + Normalize; the centre crop
  of the network's input first where the recipe has one).
* "weak": the recipe's weak augmentation ("crop_flip": RandomCrop(32, padding=4) +
  RandomHorizontalFlip; "none": nothing; see `RECIPES` for the real-world datasets').
* "strong": the weak augmentation, then the recipe's policy: CIFAR-10 AutoAugment
  (`autoaugment.cifar10_autoaugment`) for the in-memory sets, one sub-policy per image. It also
  runs on one-channel images, with PIL's "L"-image semantics.

* "autoaugment_cutout": SOP's second view (its `data_loader/data_loaders.py`): AutoAugment first,
  then the weak augmentation, normalisation, and Cutout of one square of half the image side
  (16x16 on CIFAR) after normalisation (`cutout`), so the cut square is 0 in normalised units.
* "autoaugment_weak": the same view before its Cutout, for a method that normalises it its own
  way first (SOP's CIFAR-100 view 2, normalised with CIFAR-10's constants).

A method that needs another view registers it (`@register_view("mine")`, with an optional step
on the normalised images) and names it in its streams.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as tvf
from torch import Tensor
from torchvision.ops import roi_align

from nlbench.errors import DataError
from nlbench.methods.toolkit.autoaugment import (
    cifar10_autoaugment,
    imagenet_autoaugment,
    ssr_randaugment,
)
from nlbench.registry import Registry

Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def random_crop_flip(
    images: Tensor, generator: torch.Generator, padding: int = 4, size: int | None = None
) -> Tensor:
    """torchvision RandomCrop(size, padding, fill=0) then RandomHorizontalFlip(0.5), per sample,
    on a uint8 batch [B, C, H, W] (size None: the image's own H = W): two gathers on the
    zero-padded batch with per-sample row and column indices (a flip is reversed columns)."""
    b, c, h, w = images.shape
    if size is not None and h != w:
        raise ValueError(f"random_crop_flip to size {size} needs square images, got {h}x{w}")
    out_h, out_w = (size, size) if size is not None else (h, w)
    span = 2 * padding + 1 + h - out_h
    offsets = torch.randint(span, (2, b), generator=generator).to(images.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = offsets[0, :, None] + torch.arange(out_h, device=images.device)
    cols = torch.arange(out_w, device=images.device).expand(b, out_w)
    cols = offsets[1, :, None] + torch.where(flip[:, None], cols.flip(1), cols)
    out = padded.gather(2, rows.view(b, 1, out_h, 1).expand(b, c, out_h, w + 2 * padding))
    return out.gather(3, cols.view(b, 1, 1, out_w).expand(b, c, out_h, out_w))


def random_resized_crop_flip(
    images: Tensor,
    generator: torch.Generator,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """torchvision RandomResizedCrop(size) then RandomHorizontalFlip(0.5), per sample, batched.

    The box follows torchvision's `get_params`: up to 10 tries of an area fraction ~ U(scale)
    and a log-uniform aspect ratio, the first box that fits is kept, else the whole image (these
    images are square, so its fallback centre crop is the whole image). The box is resampled to
    size x size with `roi_align` (bilinear, averaging ceil(box / size) samples per output pixel
    per axis): close to PIL's antialiased bilinear resize, not bit-equal to it.
    """
    b, _, h, w = images.shape
    tries = 10
    area = h * w * torch.empty(b, tries).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(b, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                               generator=generator)  # fmt: skip
    aspect = log_ratio.exp()
    box_w = (area * aspect).sqrt().round()
    box_h = (area / aspect).sqrt().round()
    fits = (box_w > 0) & (box_w <= w) & (box_h > 0) & (box_h <= h)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((b,), -1))
    pick = first.clamp(min=0)[:, None]
    box_w = torch.where(first >= 0, box_w.gather(1, pick).squeeze(1), torch.tensor(float(w)))
    box_h = torch.where(first >= 0, box_h.gather(1, pick).squeeze(1), torch.tensor(float(h)))
    top = (torch.rand(b, generator=generator) * (h - box_h + 1)).floor()
    left = (torch.rand(b, generator=generator) * (w - box_w + 1)).floor()
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32), left, top, left + box_w,
                         top + box_h], dim=1).to(images.device)  # fmt: skip
    out = roi_align(images.float(), boxes, output_size=size, spatial_scale=1.0, aligned=True)
    out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _identity(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    return images


def centre_crop(size: int) -> Callable[[Tensor], Tensor]:
    """torchvision CenterCrop(size) of a batch."""
    return functools.partial(tvf.center_crop, output_size=[size, size])


@dataclass(frozen=True)
class Recipe:
    """A dataset's augmentation: `weak` (geometry of training views), `policy` (the strong view
    is policy(weak(x))), `test` (what evaluation and the "none" view see)."""

    weak: Augmentation
    policy: Augmentation
    test: Callable[[Tensor], Tensor] = _identity


RECIPES: Registry[Recipe] = Registry("augment", DataError)
for _name, _recipe in {
    "crop_flip": Recipe(random_crop_flip, cifar10_autoaugment),
    "none": Recipe(_identity, cifar10_autoaugment),
    # SSR main_animal10.py l.169-177: RandomCrop(64, padding=8) + flip; RandAugment; no resize.
    "animal10n": Recipe(functools.partial(random_crop_flip, padding=8), ssr_randaugment),
    # main_clothing1m.py l.203-225, on images decoded as Resize(256) + their central 256 square:
    # RandomCrop(224) + flip; ImageNetPolicy after the flip; test CenterCrop(224).
    "clothing1m": Recipe(
        functools.partial(random_crop_flip, padding=0, size=224),
        imagenet_autoaugment,
        centre_crop(224),
    ),
    # main_webvision.py l.196-215, on Resize(320) + central 320 square: RandomResizedCrop(299) +
    # flip; ImageNetPolicy after the flip; test CenterCrop(299).
    "webvision": Recipe(
        functools.partial(random_resized_crop_flip, size=299),
        imagenet_autoaugment,
        centre_crop(299),
    ),
}.items():
    RECIPES.add(_name, _recipe)
"""Each dataset's augmentation recipe, by the name its loader gives (`Dataset.augment`)."""

ViewFn = Callable[[Tensor, str, torch.Generator], Tensor]
PostFn = Callable[[Tensor, torch.Generator], Tensor]
VIEWS: Registry[ViewFn] = Registry("view", DataError)
AFTER_NORMALISE: dict[str, PostFn] = {}


def register_view(name: str, after_normalise: PostFn | None = None) -> Callable[[ViewFn], ViewFn]:
    """Decorator: make `fn(images_uint8, augment, generator) -> images_uint8` the view `name`;
    `after_normalise(images_float, generator)`, when given, runs on its normalised output."""

    def wrap(fn: ViewFn) -> ViewFn:
        VIEWS.add(name, fn)
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


def recipe(augment: str) -> Recipe:
    """The registered recipe `augment`, or a DataError (a ValueError) naming the valid ones."""
    return RECIPES.lookup(augment)


@register_view("none")
def no_augmentation(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return recipe(augment).test(images)


@register_view("weak")
def weak_view(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return recipe(augment).weak(images, generator)


@register_view("strong")
def strong_view(images: Tensor, augment: str, generator: torch.Generator) -> Tensor:
    return recipe(augment).policy(weak_view(images, augment, generator), generator)


@register_view("autoaugment_weak")
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

    `augment` names the dataset's augmentation recipe (`RECIPES`); `generator` is a
    CPU generator; `channels_last` returns NHWC memory for convolutions that prefer it.
    """
    out = normalise(VIEWS.lookup(view)(images_uint8, augment, generator), mean, std)
    if view in AFTER_NORMALISE:
        out = AFTER_NORMALISE[view](out, generator)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
