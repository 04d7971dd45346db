"""SSR's strong augmentations (CIFAR-10 and ImageNet AutoAugment, RandAugment), batched on the
device and matched to PIL pixel for pixel.

SSR's strong view uses `CIFAR10Policy` from SSR_BMVC2022 `utils/autoaugment.py` (commit 849530d;
class at l.246-299, `SubPolicy` at l.357-456; itself DeepVoltaire/AutoAugment's). Facts taken
from that file, which this module reproduces:

* 25 sub-policies, one drawn uniformly per image (`random.randint(0, 24)`); each is two
  (probability, operation, magnitude index) steps applied in order, each when `random() < p`.
* Magnitude tables (10 entries each): shearX/Y `linspace(0, 0.3)`; translateX/Y
  `linspace(0, 150/331)` times the image width/height; rotate `linspace(0, 30)` degrees;
  color/contrast/sharpness/brightness `linspace(0, 0.9)`, used as the factor `1 + m * sign`;
  posterize `round(linspace(8, 4))` bits; solarize threshold `linspace(256, 0)`;
  autocontrast, equalize and invert take none.
* A random sign (`random.choice([-1, 1])`) for shearX/Y, translateX/Y, color, contrast, sharpness
  and brightness. Rotate has NONE: its signed line is commented out, so rotation is always
  counter-clockwise by +m degrees.
* Shears are `Image.transform(AFFINE, (1, m, 0, 0, 1, 0) / (1, 0, 0, m, 1, 0), BICUBIC,
  fillcolor=(128, 128, 128))`: a shear about the top-left corner, not the centre. Translations
  are the same call with PIL's default resampling (NEAREST) and offsets `m * size * sign`.
  Rotate converts to RGBA, rotates (NEAREST, about the centre, same size), and composites over
  grey 128 with the rotated alpha as mask, i.e. a rotation filled with 128.
* Colour ops are PIL's ImageEnhance / ImageOps: `Image.blend(degenerate, image, factor)` with a
  black degenerate (brightness), the rounded mean of the "L" image (contrast), the "L" image
  itself (color) and the SMOOTH-filtered image (sharpness); autocontrast with cutoff 0;
  equalize; invert; posterize; solarize (pixels `>= threshold` inverted).

Each op here copies PIL's arithmetic (Pillow 13 `Blend.c`, `Filter.c`, `Geometry.c`,
`Convert.c`: float32 blend truncated toward zero, ITU-R 601 integer grey, SMOOTH rounded with
borders kept, bicubic with a = -1 and truncation, nearest with 16.16 fixed point) so that the
tests can demand near-exact agreement, not just a similar look. One deliberate departure: PIL
maps pure translations with float rather than fixed-point coordinates; the two differ only when
`offset + 0.5` lies within 2**-17 of an integer, which no magnitude in the table does.

One-channel images are accepted with the semantics PIL gives an "L" image: grey is the image
itself, so color is the identity and contrast uses the image mean. Affine fill is 128 there too,
where the official file would fail (PIL rejects its (128, 128, 128) fill for one band); SSR
applies the policy only to CIFAR, so this is an extension, not a change.

The same file's other two strong transforms, both built on the same `SubPolicy` (so the same
ops, magnitude tables, signs and fill as above), are here too:

* `imagenet_autoaugment`: `ImageNetPolicy` (l.69-122; entries l.90-114, DeepVoltaire's ImageNet
  policy, default fill (128, 128, 128)), SSR's strong view for mini-WebVision (main_webvision.py
  l.209-214) and Clothing1M (main_clothing1m.py l.210-217). 25 sub-policies drawn uniformly
  (`random.randint(0, 24)`, l.118); entries 20-24 repeat entries 4, 1, 13, 14 and 2, so those
  five are twice as likely, as in the official file. One probability is 0.0 (entry 12's first
  step), which never fires.
* `ssr_randaugment`: `RandAugment` (l.463-499), SSR's strong view for ANIMAL-10N
  (main_animal10.py l.174-177, after RandomCrop(64, padding=8) and a flip). Its table is every
  pair of (0.5, op, magnitude index) steps, with the 15 ops of `get_trans_list` (l.471-474, in
  that order) and magnitude indices 1-9 (l.481: index 0, the no-op end of each range, is never
  used): 135 x 135 = 18225 sub-policies, one drawn uniformly per image (l.494), i.e. two ops
  with independent uniform (op, magnitude index) and each applied with probability 0.5. It is
  held here as exactly that table (`RANDAUGMENT_POLICY`), so both policies share one draw and
  one apply path with CIFAR-10's. There is no identity op and no magnitude drawn outside the
  tables; a drawn op's value is computed from the table entry as in every `SubPolicy`.
* Cutout, the one op RandAugment adds (`Cutout`, l.14-66; size table `round(linspace(0, 20))`,
  l.383, so 2, 4, 7, 9, 11, 13, 16, 18, 20 for indices 1-9): a centre drawn uniformly with
  `np.random.randint` (column in [0, W), then row in [0, H); the file calls them height and
  width but indexes PIL's `(x, y)` pixel access with them), then the pixels whose column lies in
  `[max(0, cx - s // 2), min(W, cx + s // 2))` and row in the same for cy are set to
  (125, 122, 113) (the written alpha 0 is dropped by an RGB image). An odd size therefore cuts
  an even square one pixel smaller (7 -> 6x6), and the patch is clipped at the borders. Here the
  centre is drawn as a float in [0, 1) from the generator and scaled (`floor(u * W)`), which is
  uniform over the pixels up to float64 rounding. One-channel images get the fill's "L" value
  (122), where the official file raises (PIL rejects a 4-tuple for an "L" pixel); size 0, which
  the official asserts against and RandAugment never draws, cuts nothing.

tests/test_autoaugment_policies.py holds both against the official classes themselves: digests
of what they produced (run outside this repository) for every op, magnitude and sign, every
ImageNet sub-policy and seeded whole-policy runs, at 64x64, 224x224 and 40x64, with the same
draws fed to `apply_policy`; all agree byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvf
from torch import Tensor

FILL = 128

MAGNITUDES: dict[str, np.ndarray] = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10),
    "translateY": np.linspace(0, 150 / 331, 10),
    "rotate": np.linspace(0, 30, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(np.int64),
    "solarize": np.linspace(256, 0, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
    "autocontrast": np.zeros(10),
    "equalize": np.zeros(10),
    "invert": np.zeros(10),
    "cutout": np.round(np.linspace(0, 20, 10), 0).astype(np.int64),
}

SIGNED = frozenset(
    {"shearX", "shearY", "translateX", "translateY", "color", "contrast", "sharpness", "brightness"}
)

Step = tuple[float, str, int]

CIFAR10_POLICY: tuple[tuple[Step, Step], ...] = (
    ((0.1, "invert", 7), (0.2, "contrast", 6)),
    ((0.7, "rotate", 2), (0.3, "translateX", 9)),
    ((0.8, "sharpness", 1), (0.9, "sharpness", 3)),
    ((0.5, "shearY", 8), (0.7, "translateY", 9)),
    ((0.5, "autocontrast", 8), (0.9, "equalize", 2)),
    ((0.2, "shearY", 7), (0.3, "posterize", 7)),
    ((0.4, "color", 3), (0.6, "brightness", 7)),
    ((0.3, "sharpness", 9), (0.7, "brightness", 9)),
    ((0.6, "equalize", 5), (0.5, "equalize", 1)),
    ((0.6, "contrast", 7), (0.6, "sharpness", 5)),
    ((0.7, "color", 7), (0.5, "translateX", 8)),
    ((0.3, "equalize", 7), (0.4, "autocontrast", 8)),
    ((0.4, "translateY", 3), (0.2, "sharpness", 6)),
    ((0.9, "brightness", 6), (0.2, "color", 8)),
    ((0.5, "solarize", 2), (0.0, "invert", 3)),
    ((0.2, "equalize", 0), (0.6, "autocontrast", 0)),
    ((0.2, "equalize", 8), (0.8, "equalize", 4)),
    ((0.9, "color", 9), (0.6, "equalize", 6)),
    ((0.8, "autocontrast", 4), (0.2, "solarize", 8)),
    ((0.1, "brightness", 3), (0.7, "color", 0)),
    ((0.4, "solarize", 5), (0.9, "autocontrast", 3)),
    ((0.9, "translateY", 9), (0.7, "translateY", 9)),
    ((0.9, "autocontrast", 2), (0.8, "solarize", 3)),
    ((0.8, "equalize", 8), (0.1, "invert", 3)),
    ((0.7, "translateY", 9), (0.9, "autocontrast", 1)),
)

IMAGENET_POLICY: tuple[tuple[Step, Step], ...] = (
    ((0.4, "posterize", 8), (0.6, "rotate", 9)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
    ((0.6, "posterize", 7), (0.6, "posterize", 6)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.4, "equalize", 4), (0.8, "rotate", 8)),
    ((0.6, "solarize", 3), (0.6, "equalize", 7)),
    ((0.8, "posterize", 5), (1.0, "equalize", 2)),
    ((0.2, "rotate", 3), (0.6, "solarize", 8)),
    ((0.6, "equalize", 8), (0.4, "posterize", 6)),
    ((0.8, "rotate", 8), (0.4, "color", 0)),
    ((0.4, "rotate", 9), (0.6, "equalize", 2)),
    ((0.0, "equalize", 7), (0.8, "equalize", 8)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "rotate", 8), (1.0, "color", 2)),
    ((0.8, "color", 8), (0.8, "solarize", 7)),
    ((0.4, "sharpness", 7), (0.6, "invert", 8)),
    ((0.6, "shearX", 5), (1.0, "equalize", 9)),
    ((0.4, "color", 0), (0.6, "equalize", 3)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
)
"""`ImageNetPolicy` of SSR's utils/autoaugment.py l.90-114, entry for entry."""

RANDAUGMENT_OPS: tuple[str, ...] = (
    "invert",
    "cutout",
    "sharpness",
    "autocontrast",
    "posterize",
    "shearX",
    "translateX",
    "translateY",
    "shearY",
    "rotate",
    "equalize",
    "contrast",
    "color",
    "solarize",
    "brightness",
)
"""`RandAugment.get_trans_list` (l.471-474), in its order, spelled as the keys here."""

RANDAUGMENT_MAGNITUDES: tuple[int, ...] = tuple(range(1, 10))
RANDAUGMENT_PROB = 0.5
_RANDAUGMENT_STEPS: tuple[Step, ...] = tuple(
    (RANDAUGMENT_PROB, name, m) for name in RANDAUGMENT_OPS for m in RANDAUGMENT_MAGNITUDES
)
RANDAUGMENT_POLICY: tuple[tuple[Step, Step], ...] = tuple(
    (first, second) for first in _RANDAUGMENT_STEPS for second in _RANDAUGMENT_STEPS
)
"""`RandAugment.get_rand_policies` (l.478-487): every ordered pair of steps, first step outer."""

CUTOUT_FILL = (125, 122, 113)


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Per-sample parameters shaped [N, 1, 1, 1] on the images' device, for broadcasting."""
    return values.to(like.device, torch.float32).view(-1, 1, 1, 1)


def grey(images: Tensor) -> Tensor:
    """PIL's RGB -> "L" conversion (ITU-R 601 in 16-bit fixed point, rounded): [N, 1, H, W]."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.to(torch.int32).unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(1)


def blend(degenerate: Tensor, images: Tensor, factor: Tensor) -> Tensor:
    """PIL's `Image.blend(degenerate, images, factor)`: float32 `d + f * (x - d)`, clipped and
    truncated toward zero (not rounded), which is what every ImageEnhance class returns."""
    d = degenerate.to(torch.float32)
    out = d + _per_sample(factor, images) * (images.to(torch.float32) - d)
    return out.clamp_(0, 255).to(torch.uint8)


def brightness(images: Tensor, factor: Tensor) -> Tensor:
    """ImageEnhance.Brightness: blend with black."""
    return blend(torch.zeros_like(images[:, :1]), images, factor)


def contrast(images: Tensor, factor: Tensor) -> Tensor:
    """ImageEnhance.Contrast: blend with the grey image's mean, rounded half up to an integer."""
    lum = grey(images)
    mean = lum.to(torch.int64).sum((-3, -2, -1), keepdim=True).double() / lum[0].numel()
    return blend(torch.floor(mean + 0.5), images, factor)


def color(images: Tensor, factor: Tensor) -> Tensor:
    """ImageEnhance.Color (saturation): blend with the image's own grey version."""
    return blend(grey(images), images, factor)


def smooth(images: Tensor) -> Tensor:
    """PIL's ImageFilter.SMOOTH (3x3 kernel 1,1,1/1,5,1/1,1,1 over 13, rounded); PIL leaves the
    one-pixel border unfiltered, and so does this. The kernel is a 3x3 box plus 4x the centre,
    summed from shifted slices: on 32x32 batches that beats a grouped conv2d several times."""
    h, w = images.shape[-2:]
    if h < 3 or w < 3:
        return images
    x = images.to(torch.float32)
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    sums = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * x[..., 1:-1, 1:-1]
    out = images.clone()
    out[..., 1:-1, 1:-1] = torch.floor((sums + 6.5) / 13).to(torch.uint8)
    return out


def sharpness(images: Tensor, factor: Tensor) -> Tensor:
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image."""
    return blend(smooth(images), images, factor)


def posterize(images: Tensor, bits: Tensor) -> Tensor:
    """ImageOps.posterize: keep the top `bits` bits of every channel."""
    keep = (0xFF << (8 - bits.to(torch.int64))) & 0xFF
    return images & keep.to(images.device, torch.uint8).view(-1, 1, 1, 1)


def solarize(images: Tensor, threshold: Tensor) -> Tensor:
    """ImageOps.solarize: invert every value `>= threshold` (thresholds may be fractional)."""
    return torch.where(images < _per_sample(threshold, images), images, 255 - images)


def autocontrast(images: Tensor, _: Tensor | None = None) -> Tensor:
    """ImageOps.autocontrast (cutoff 0), per channel: `int(x * scale + offset)` in float64 with
    PIL's scale = 255 / (hi - lo) and offset = -lo * scale; flat channels are left alone."""
    lo = images.amin((-2, -1), keepdim=True).double()
    hi = images.amax((-2, -1), keepdim=True).double()
    span = (hi - lo).clamp(min=1)
    scale = torch.full_like(span, 255.0) / span  # `255.0 / span` would multiply by a reciprocal
    offset = -lo * scale
    stretched = (images.double() * scale + offset).trunc_().clamp_(0, 255).to(torch.uint8)
    return torch.where(hi > lo, stretched, images)


def equalize(images: Tensor, _: Tensor | None = None) -> Tensor:
    """ImageOps.equalize per channel; torchvision's batched version follows PIL's step rule."""
    return tvf.equalize(images)


def invert(images: Tensor, _: Tensor | None = None) -> Tensor:
    """ImageOps.invert."""
    return 255 - images


def _cubic(v1: Tensor, v2: Tensor, v3: Tensor, v4: Tensor, d: Tensor) -> Tensor:
    """Pillow Geometry.c BICUBIC (a = -1), in its operation order so float64 results agree."""
    p2 = -v1 + v3
    p3 = 2 * (v1 - v2) + v3 - v4
    p4 = -v1 + v2 - v3 + v4
    return v2 + d * (p2 + d * (p3 + d * p4))


def _pixel_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return xs.reshape(1, -1), ys.reshape(1, -1)


def _gather(flat: Tensor, index: Tensor) -> Tensor:
    """flat [N, C, H*W] at per-sample pixel indices [N, P] -> [N, C, P]."""
    return flat.gather(2, index.unsqueeze(1).expand(-1, flat.shape[1], -1))


def _affine_nearest(images: Tensor, a: Tensor) -> Tensor:
    """PIL's nearest affine path (`affine_fixed`): 16.16 fixed-point source coordinates."""
    n, c, h, w = images.shape
    a = a.double().cpu()
    fixed = torch.floor(a * 65536.0 + 0.5).long()
    a2 = torch.floor((a[:, 2] + a[:, 0] * 0.5 + a[:, 1] * 0.5) * 65536.0 + 0.5).long()
    a5 = torch.floor((a[:, 5] + a[:, 3] * 0.5 + a[:, 4] * 0.5) * 65536.0 + 0.5).long()
    coef = torch.stack([fixed[:, 0], fixed[:, 1], a2, fixed[:, 3], fixed[:, 4], a5], 1)
    coef = coef.to(images.device).unsqueeze(2)
    xs, ys = _pixel_grid(h, w, images.device, torch.int64)
    src_x = torch.div(coef[:, 2] + ys * coef[:, 1] + xs * coef[:, 0], 65536, rounding_mode="floor")
    src_y = torch.div(coef[:, 5] + ys * coef[:, 4] + xs * coef[:, 3], 65536, rounding_mode="floor")
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    index = src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)
    out = _gather(images.reshape(n, c, h * w), index)
    out = torch.where(inside.unsqueeze(1), out, FILL)
    return out.reshape(n, c, h, w)


def _affine_bicubic(images: Tensor, a: Tensor) -> Tensor:
    """PIL's generic bicubic affine path: sample at pixel centres, fill where the centre maps
    outside the image, clamp the 4x4 neighbourhood to the edge, truncate the result."""
    n, c, h, w = images.shape
    a = a.to(images.device, torch.float64).unsqueeze(2)
    xs, ys = _pixel_grid(h, w, images.device, torch.float64)
    xs, ys = xs + 0.5, ys + 0.5
    src_x = a[:, 0] * xs + a[:, 1] * ys + a[:, 2]
    src_y = a[:, 3] * xs + a[:, 4] * ys + a[:, 5]
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    src_x, src_y = src_x - 0.5, src_y - 0.5
    x0, y0 = torch.floor(src_x), torch.floor(src_y)
    dx, dy = (src_x - x0).unsqueeze(1), (src_y - y0).unsqueeze(1)
    cols = [(x0 + k - 1).clamp(0, w - 1).long() for k in range(4)]
    rows = [(y0 + k - 1).clamp(0, h - 1).long() * w for k in range(4)]
    flat = images.reshape(n, c, h * w).double()
    along_x = [_cubic(*(_gather(flat, r + col) for col in cols), dx) for r in rows]
    value = _cubic(*along_x, dy).clamp_(0, 255).to(torch.uint8)
    out = torch.where(inside.unsqueeze(1), value, FILL)
    return out.reshape(n, c, h, w)


def rotate_matrix(angle: float, width: int, height: int) -> tuple[float, ...]:
    """The inverse-map coefficients `Image.rotate(angle)` hands to `Image.transform` (Pillow 13
    Image.py): counter-clockwise about (w/2, h/2), trigonometry rounded to 15 decimals."""
    theta = -math.radians(angle % 360.0)
    a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)
    d, e = round(-math.sin(theta), 15), round(math.cos(theta), 15)
    cx, cy = width / 2, height / 2
    return (a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy)


AffineCoefficients = Callable[[float, int, int], tuple[float, ...]]

_AFFINE: dict[str, tuple[AffineCoefficients, Callable[[Tensor, Tensor], Tensor]]] = {
    "shearX": (lambda v, w, h: (1.0, v, 0.0, 0.0, 1.0, 0.0), _affine_bicubic),
    "shearY": (lambda v, w, h: (1.0, 0.0, 0.0, v, 1.0, 0.0), _affine_bicubic),
    "translateX": (lambda v, w, h: (1.0, 0.0, v, 0.0, 1.0, 0.0), _affine_nearest),
    "translateY": (lambda v, w, h: (1.0, 0.0, 0.0, 0.0, 1.0, v), _affine_nearest),
    "rotate": (rotate_matrix, _affine_nearest),
}


def affine(name: str, images: Tensor, values: Tensor) -> Tensor:
    """Apply the affine op `name` with one value per image (shear coefficient, offset in pixels
    or angle in degrees). Coefficients are built in Python floats, once per distinct value
    (a batch has only a handful), so they equal PIL's to the last bit."""
    coefficients, sample = _AFFINE[name]
    h, w = images.shape[-2:]
    distinct, which = torch.unique(values.double().cpu(), return_inverse=True)
    table = torch.tensor([coefficients(v, w, h) for v in distinct.tolist()], dtype=torch.float64)
    return sample(images, table[which])


OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    **{name: (lambda images, values, name=name: affine(name, images, values)) for name in _AFFINE},
    "color": color,
    "posterize": posterize,
    "solarize": solarize,
    "contrast": contrast,
    "sharpness": sharpness,
    "brightness": brightness,
    "autocontrast": autocontrast,
    "equalize": equalize,
    "invert": invert,
}
"""Each op takes uint8 images [N, C, H, W] and one value per image: the argument the official
file hands PIL (enhance factor, posterize bits, solarize threshold, shear coefficient,
translation in pixels, angle in degrees; ignored by autocontrast, equalize and invert)."""


def op_values(name: str, magnitude: Tensor, sign: Tensor, height: int, width: int) -> Tensor:
    """The PIL argument the official lambdas compute from a table magnitude and a random sign."""
    if name in ("color", "contrast", "sharpness", "brightness"):
        return 1 + magnitude * sign
    if name == "translateX":
        return magnitude * width * sign
    if name == "translateY":
        return magnitude * height * sign
    if name in SIGNED:
        return magnitude * sign
    return magnitude


def cutout(images: Tensor, size: Tensor, centre: Tensor) -> Tensor:
    """SSR's `Cutout` (utils/autoaugment.py l.14-66) with one size [N] and one integer pixel
    centre [N, 2] (column, row) per image: columns `[cx - size // 2, cx + size // 2)` and rows
    likewise, clipped to the image, are set to (125, 122, 113); "L" images get its grey, 122."""
    _, c, h, w = images.shape
    half = (size.to(torch.int64) // 2).view(-1, 1).to(images.device)
    centre = centre.to(images.device, torch.int64)
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    in_cols = (cols >= centre[:, :1] - half) & (cols < centre[:, :1] + half)
    in_rows = (rows >= centre[:, 1:] - half) & (rows < centre[:, 1:] + half)
    hole = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
    fill = torch.tensor(CUTOUT_FILL, dtype=torch.uint8).view(1, 3, 1, 1)
    fill = fill if c == 3 else grey(fill)
    return torch.where(hole, fill.to(images.device), images)


_OP_NAMES = (*OPS, "cutout")
"""Every op a policy table may name: `OPS` (one value per image) and cutout (which also needs
a centre, drawn with the policy)."""


@dataclass(frozen=True)
class _Compiled:
    """A policy table as tensors, [T, 2] each: op index into `_OP_NAMES`, probability, magnitude
    (the table value the official `SubPolicy` looks up, before any sign)."""

    op: Tensor
    prob: Tensor
    magnitude: Tensor
    has_cutout: bool


_COMPILED: dict[int, tuple[Sequence[tuple[Step, Step]], _Compiled]] = {}


def _compiled(policy: Sequence[tuple[Step, Step]]) -> _Compiled:
    """The tensors of `policy`, built once per table object (keyed by identity, the table kept
    alive alongside so the key cannot be reused)."""
    hit = _COMPILED.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    unknown = {s[1] for sub in policy for s in sub} - set(_OP_NAMES)
    if unknown:
        raise ValueError(f"policy names unknown ops {sorted(unknown)}; known: {_OP_NAMES}")
    table = _Compiled(
        op=torch.tensor([[_OP_NAMES.index(s[1]) for s in sub] for sub in policy]),
        prob=torch.tensor([[s[0] for s in sub] for sub in policy], dtype=torch.float64),
        magnitude=torch.tensor(
            [[float(MAGNITUDES[s[1]][s[2]]) for s in sub] for sub in policy], dtype=torch.float64
        ),
        has_cutout=any(s[1] == "cutout" for sub in policy for s in sub),
    )
    _COMPILED[id(policy)] = (policy, table)
    return table


for _table in (CIFAR10_POLICY, IMAGENET_POLICY, RANDAUGMENT_POLICY):
    _compiled(_table)
del _table


@dataclass(frozen=True)
class PolicyDraw:
    """The random choices for a batch, all on the CPU: drawing them there keeps runs
    reproducible from a CPU generator and lets the device work without any host sync.

    `policy` [B] sub-policy index into `table`; `applied` [B, 2] whether each of its two steps
    fires; `sign` [B, 2] the +-1 the official file would draw for each step (unused by unsigned
    ops); `cutout` [B, 2, 2] per step the cutout centre as fractions (column, row) in [0, 1) of
    the width and height, drawn only when the table has a cutout step (else None).
    """

    policy: Tensor
    applied: Tensor
    sign: Tensor
    table: Sequence[tuple[Step, Step]] = CIFAR10_POLICY
    cutout: Tensor | None = None


def draw_policy(
    batch: int, generator: torch.Generator, policy: Sequence[tuple[Step, Step]] = CIFAR10_POLICY
) -> PolicyDraw:
    """Draw one sub-policy of `policy` per image uniformly, then each step's coin and sign, then
    (only for a table with cutout, so the other tables' draws are unchanged) cutout centres."""
    table = _compiled(policy)
    index = torch.randint(len(policy), (batch,), generator=generator)
    applied = torch.rand(batch, 2, generator=generator, dtype=torch.float64) < table.prob[index]
    sign = torch.randint(2, (batch, 2), generator=generator).double() * 2 - 1
    centre = None
    if table.has_cutout:
        centre = torch.rand(batch, 2, 2, generator=generator, dtype=torch.float64)
    return PolicyDraw(index, applied, sign, policy, centre)


def apply_policy(images: Tensor, draw: PolicyDraw) -> Tensor:
    """Apply drawn sub-policies: per step, each op runs once on the images that need it.

    Within a step every image gets at most one op, so the groups are disjoint and their order
    does not matter; the second step sees the first step's output, as in the official file.
    """
    if images.dim() != 4 or images.dtype != torch.uint8 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"AutoAugment needs uint8 images [B, 1 or 3, H, W], got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    table = _compiled(draw.table)
    out = images.clone()
    h, w = images.shape[-2:]
    for step in range(2):
        op_ids = table.op[draw.policy, step]
        fired = draw.applied[:, step]
        for op_id in op_ids[fired].unique().tolist():
            rows = (fired & (op_ids == op_id)).nonzero().squeeze(1)
            name = _OP_NAMES[op_id]
            magnitude = table.magnitude[draw.policy[rows], step]
            index = rows.to(images.device)
            if name == "cutout":
                if draw.cutout is None:
                    raise ValueError("a draw for a table with cutout needs cutout centres")
                scale = torch.tensor([w, h], dtype=torch.float64)
                centre = torch.floor(draw.cutout[rows, step] * scale).long()
                centre = torch.minimum(centre, torch.tensor([w - 1, h - 1]))
                out[index] = cutout(out[index], magnitude, centre)
                continue
            values = op_values(name, magnitude, draw.sign[rows, step], h, w)
            out[index] = OPS[name](out[index], values)
    return out


def cifar10_autoaugment(images: Tensor, generator: torch.Generator) -> Tensor:
    """SSR's `CIFAR10Policy` on a whole uint8 batch [B, 1 or 3, H, W], on the batch's device.

    `generator` must be a CPU generator: every random choice is drawn on the host.
    """
    return apply_policy(images, draw_policy(images.shape[0], generator))


def imagenet_autoaugment(images: Tensor, generator: torch.Generator) -> Tensor:
    """SSR's `ImageNetPolicy` (fill 128) on a whole uint8 batch [B, 1 or 3, H, W], on the
    batch's device; `generator` must be a CPU generator."""
    return apply_policy(images, draw_policy(images.shape[0], generator, IMAGENET_POLICY))


def ssr_randaugment(images: Tensor, generator: torch.Generator) -> Tensor:
    """SSR's ANIMAL-10N `RandAugment` on a whole uint8 batch [B, 1 or 3, H, W], on the batch's
    device: per image two (op, magnitude index 1-9) steps drawn uniformly, each applied with
    probability 0.5. `generator` must be a CPU generator."""
    return apply_policy(images, draw_policy(images.shape[0], generator, RANDAUGMENT_POLICY))
