"""The pieces of MixUp and MixMatch that several methods share, written once.

MixUp (mixup.py), SSR's mixup of its strong views and DivideMix's MixMatch (and the next methods
built on it, UNICON, ProMix) all draw one lambda per step from Beta(alpha, alpha), pair each
sample with another by a random permutation, mix inputs and (soft) targets the same way, and
train on the mixed targets with a soft cross-entropy; MixMatch adds sharpening, co-guessing and
a linearly ramped unlabelled weight. Each function says which official lines it is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def mixup_lambda(rng: np.random.Generator, alpha: float, at_least_half: bool = False) -> float:
    """lambda ~ Beta(alpha, alpha) (numpy's, as every official code draws it); with
    `at_least_half` max(lambda, 1 - lambda), so the first image dominates (MixMatch, SSR);
    alpha <= 0 gives lambda = 1, no mixing (mixup-cifar10 `mixup_data`)."""
    if alpha <= 0:
        return 1.0
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam) if at_least_half else lam


def mix_pairing(size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The partner of each sample: a random permutation, drawn on the CPU generator."""
    return torch.randperm(size, generator=generator).to(device)


def mix(values: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """lam v + (1 - lam) v[perm]: images, or soft targets, mixed with their partners."""
    return lam * values + (1 - lam) * values[perm]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-mean_i sum_c t_ic log softmax(logits)_ic: cross-entropy against soft targets (in fp32)."""
    return -(F.log_softmax(logits.float(), dim=1) * targets).sum(dim=1).mean()


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T), rows renormalised (MixMatch; DivideMix Train_cifar.py l.70-72, l.81-83)."""
    p = p.pow(1 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def co_guess(unlabelled_logits: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Co-guessing (DivideMix l.64-72): sharpen the mean softmax of every network on every view."""
    return sharpen(sum(z.softmax(dim=1) for z in unlabelled_logits) / len(unlabelled_logits),
                   temperature)  # fmt: skip


def linear_rampup(current: float, warm_up: int, lambda_u: float, length: int = 16) -> float:
    """lambda_u * clip((current - warm_up) / length, 0, 1) (DivideMix l.192-194)."""
    return lambda_u * float(np.clip((current - warm_up) / length, 0.0, 1.0))


def refine_labels(
    logits_x1: torch.Tensor,
    logits_x2: torch.Tensor,
    onehot: torch.Tensor,
    w_x: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Label co-refinement (DivideMix `Train_cifar.py` l.76-83; UNICON l.121-131): sharpen(w_x y + (1 - w_x) mean of the trained network's
    softmax on the two views), w_x the peer's clean probability."""
    px = (logits_x1.softmax(dim=1) + logits_x2.softmax(dim=1)) / 2
    return sharpen(w_x[:, None] * onehot + (1 - w_x[:, None]) * px, temperature)


def mixmatch_loss(
    logits: torch.Tensor, mixed_target: torch.Tensor, labelled: int, lamb: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, Lx, Lu) on the mixed batch (DivideMix l.101-117, SemiLoss l.196-203; UNICON l.157-168, l.319-324): soft CE on the first
    `labelled` rows, squared error of the probabilities on the rest, weight `lamb`, plus the
    uniform-prior penalty sum_k (1/C) log((1/C) / mean_batch p_k)."""
    lx = soft_cross_entropy(logits[:labelled], mixed_target[:labelled])
    lu = (logits[labelled:].softmax(dim=1) - mixed_target[labelled:]).pow(2).mean()
    prior = torch.full((logits.shape[1],), 1 / logits.shape[1], dtype=logits.dtype,
                       device=logits.device)  # fmt: skip
    penalty = (prior * (prior / logits.softmax(dim=1).mean(dim=0)).log()).sum()
    return lx + lamb * lu + penalty, lx, lu


def warmup_loss(logits: torch.Tensor, labels: torch.Tensor, entropy_penalty: bool) -> torch.Tensor:
    """CE, plus the negative-entropy penalty mean sum_k p_k log p_k for asymmetric noise
    (DivideMix `warmup` l.124-138, `NegEntropy` l.205-208; UNICON l.190-213, l.326-329)."""
    loss = F.cross_entropy(logits, labels)
    if entropy_penalty:
        p = logits.softmax(dim=1)
        loss = loss + (p * p.clamp(min=1e-12).log()).sum(dim=1).mean()
    return loss


def fmix_mask(rng: np.random.Generator, alpha: float, decay_power: float,
              shape: tuple[int, int]) -> tuple[float, np.ndarray]:  # fmt: skip
    """FMix's (lambda, binary mask) (FMix's code as ProMix ships it in
    `utils/fmix.py` l.96-226, max_soft 0): lambda ~ Beta(alpha, alpha); a low-frequency image,
    the inverse real FFT of Gaussian noise scaled by 1 / max(f, 1 / max(H, W))^decay_power, min-max
    normalised; its ceil or floor (a coin) of lambda H W largest pixels set to 1, the rest 0.
    The mask is [1, H, W]: one for the whole batch, shared by the channels."""
    lam = float(rng.beta(alpha, alpha))
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 else 1)]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / (np.maximum(freqs, 1.0 / max(w, h)) ** decay_power)
    spectrum = scale[None, :, :, None] * rng.standard_normal((1, *freqs.shape, 2))
    # as FMix's code indexes it: the real and imaginary parts are rows 0 and 1 of the noise,
    # not its last axis (l.150), so the mask is the inverse FFT of a [W', 2] spectrum
    complex_spectrum = spectrum[:, 0] + 1j * spectrum[:, 1]
    image = np.real(np.fft.irfftn(complex_spectrum, (h, w), axes=(-2, -1)))[:1, :h, :w]
    image = image - image.min()
    image = image / image.max()
    order = image.reshape(-1).argsort()[::-1]
    count = math.ceil(lam * image.size) if rng.random() > 0.5 else math.floor(lam * image.size)
    mask = np.zeros(image.size)
    mask[order[:count]] = 1
    return lam, mask.reshape(1, h, w)
