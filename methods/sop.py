"""Sparse over-parameterisation (Liu et al., ICML 2022): model the label noise of each sample
explicitly as s_i = u_i^2 y_i - v_i^2 (1 - y_i), learned with its own SGD, so the network does not
have to fit the noise."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from nlbench.errors import ConfigError
from nlbench.methods.api import (
    Batch,
    Choice,
    Diagnostics,
    EpochPlan,
    MethodContext,
    SingleNetwork,
    SingleNetworkHParams,
    Stream,
    register,
)
from nlbench.methods.api.search import Distribution
from nlbench.methods.toolkit.optim import ScheduleName
from nlbench.methods.toolkit.views import cutout

EPS = 1e-4


class SampleNoise(nn.Module):
    """u (N, 1) and v (N, C), drawn from N(0, std^2) (`model/loss.py` l.45-52): one scalar for the
    labelled class (only its entry survives u^2 * y) and one per other class."""

    def __init__(self, num_train: int, num_classes: int, std: float) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.empty(num_train, 1).normal_(0.0, std))
        self.v = nn.Parameter(torch.empty(num_train, num_classes).normal_(0.0, std))


def sop_loss(
    logits: torch.Tensor,
    logits2: torch.Tensor | None,
    onehot: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    ratio_consistency: float,
    ratio_balance: float,
) -> torch.Tensor:
    """SOP's loss on one batch, `model/loss.py` l.55-127, for u, v rows of the batch's samples.

    U = clamp(u^2 y, 0, 1), V = clamp(v^2 (1 - y), 0, 1);
    p~ = clamp(L1-normalise(clamp(softmax(z) + U - stopgrad(V), min eps)), eps, 1);
    loss = mean CE(p~, y) + sum (onehot(argmax z) + U - V - y)^2 / B
           + ratio_balance * (-sum_k (1/C) log clamp(mean_batch p~_k, eps, 1))
           + ratio_consistency * mean KL(stopgrad(softmax(z)) || softmax(z2)).
    So v learns only from the squared term; u from every term but the consistency one.
    """
    big_u = (u.pow(2) * onehot).clamp(0, 1)
    big_v = (v.pow(2) * (1 - onehot)).clamp(0, 1)
    corrected = (logits.softmax(dim=1) + big_u - big_v.detach()).clamp(min=EPS)
    corrected = F.normalize(corrected, p=1, eps=EPS).clamp(min=EPS, max=1.0)
    hard = F.one_hot(logits.detach().argmax(dim=1), onehot.shape[1]).to(onehot.dtype)
    loss = -(onehot * corrected.log()).sum(dim=1).mean()
    loss = loss + F.mse_loss(hard + big_u - big_v, onehot, reduction="sum") / len(onehot)
    if ratio_balance > 0:
        mean = corrected.mean(dim=0).clamp(min=EPS, max=1.0)
        loss = loss + ratio_balance * -(mean.log() / onehot.shape[1]).sum()
    if logits2 is not None and ratio_consistency > 0:
        kl = F.kl_div(
            logits2.log_softmax(dim=1), logits.softmax(dim=1).detach(), reduction="none"
        ).sum(dim=1)
        loss = loss + ratio_consistency * kl.mean()
    return loss


Stats = tuple[tuple[float, ...], tuple[float, ...]]


def renormalise(images: torch.Tensor, source: Stats, target: Stats) -> torch.Tensor:
    """Images normalised with `source` (mean, std) as if normalised with `target` instead:
    (x * s_std + s_mean - t_mean) / t_std per channel, equal to normalising x / 255 with `target`
    up to float32 rounding."""

    def column(values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)

    (s_mean, s_std), (t_mean, t_std) = source, target
    return (images * column(s_std) + column(s_mean) - column(t_mean)) / column(t_std)


@register("sop")
class SOP(SingleNetwork):
    """SOP (its CIFAR config, "SOP+" in the paper: with the consistency and balance terms).

    Rules as shengliu66/SOP `model/loss.py` (see `sop_loss`) and `trainer/trainer.py` l.83-110:
    both views in one forward pass, one backward, then the network step and the u/v step (the
    official order is the reverse; the two act on disjoint parameters, so the update is the same). Recipe
    of `config_cifar100.json`, the only config it ships: PreAct ResNet-18, SGD lr 0.02, momentum
    0.9, weight decay 1e-3, batch 128, cosine to 2e-4 over 300 epochs; u, v initialised with std
    1e-8, plain SGD (no momentum, decay or schedule) with lr_u 1 and lr_v 10 (its README: lr_u 0.1,
    lr_v 100 for asymmetric 40 %); ratio_consistency 0.9, ratio_balance 0.1. View 1 is crop + flip,
    view 2 AutoAugment + crop + flip + Cutout 16 (`autoaugment_cutout`); with ratio_consistency 0
    only view 1 is drawn (the paper's plain SOP).

    Inputs (shengliu66/SOP@4d991ce `data_loader/data_loaders.py`): view 1 RandomCrop(32,
    padding=4) + flip, then ToTensor + Normalize; view 2 AutoAugment (`autoaug_paper_cifar10`),
    then the same crop, flip, ToTensor and Normalize, then Cutout(16) of the normalised tensor; the
    test ToTensor + Normalize. CIFAR-10: (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010)
    everywhere (l.19-57); CIFAR-100: (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761) for
    view 1 and the test, CIFAR-10's constants for view 2 (l.86-124). All 50,000 images train
    (`cifar10.py` l.53, `cifar100.py` l.75) in loaders that keep the last partial batch
    (`base/base_data_loader.py` l.25-37); the test set is scored whole (`train.py` l.52-59).
    `sop_paper.yaml` sets `input_stats` per dataset and, on CIFAR-100, `view2_input_stats`: view 2
    is then drawn before its Cutout (`autoaugment_weak`), re-normalised (`renormalise`) and cut
    (Cutout's centres from the method's generator). Departures: view 2's AutoAugment is the
    engine's (SSR's `CIFAR10Policy`, the AutoAugment paper's CIFAR-10 policy), where SOP uses Fast
    AutoAugment's copy of that policy (`augmentation_archive.py`, `augmentations.py`), whose ops map
    magnitudes to other values; the re-normalised view 2 equals the official's up to float32
    rounding; the engine drops a pass's last partial batch (`StreamSampler` says why that cannot
    matter).

    Diagnostics: a sample is flagged noisy when its estimated noise on the label, clamp(u_i^2, 0,
    1), exceeds `noise_threshold`; the flagged set is scored as noise detection and the trusted
    (unflagged) one as a selection, against the clean labels.
    """

    class HParams(SingleNetworkHParams):
        lr: float = Field(0.02, gt=0)
        weight_decay: float = Field(1e-3, ge=0)
        schedule: ScheduleName = "cosine"
        eta_min_ratio: float = Field(2e-4 / 0.02, ge=0)
        lr_u: float = Field(1.0, gt=0)
        lr_v: float = Field(10.0, gt=0)
        init_std: float = Field(1e-8, gt=0)
        ratio_consistency: float = Field(0.9, ge=0)
        ratio_balance: float = Field(0.1, ge=0)
        noise_threshold: float = Field(0.5, gt=0, lt=1)
        """Diagnostics only: the estimated label noise above which a sample counts as flagged."""
        view2_input_stats: Stats | None = None
        """Normalize constants of view 2 where the official uses other ones than view 1's (its
        CIFAR-100 loader: CIFAR-10's); None: view 1's. Needs `input_stats`, which it re-normalises
        from."""
        search_space: ClassVar[dict[str, Distribution]] = {
            "lr_u": Choice((0.1, 1.0, 10.0)),
            "lr_v": Choice((1.0, 10.0, 100.0)),
        }

        @model_validator(mode="after")
        def _view2_from_known_stats(self):
            if self.view2_input_stats is not None and (
                self.inputs != "normalised" or self.input_stats is None
            ):
                raise ValueError(
                    "view2_input_stats re-normalises view 2 from view 1's constants: set "
                    "input_stats (with inputs: normalised) too"
                )
            return self

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.noise = SampleNoise(ctx.num_train, ctx.num_classes, hp.init_std).to(ctx.device)
        self.noise_optimizer = torch.optim.SGD(
            [
                {"params": [self.noise.u], "lr": hp.lr_u},
                {"params": [self.noise.v], "lr": hp.lr_v},
            ],
            momentum=0.0,
            weight_decay=0.0,
        )
        view2 = hp.view2_input_stats
        if view2 is not None and not len(view2[0]) == len(view2[1]) == ctx.image_shape[0]:
            raise ConfigError(
                f"sop: view2_input_stats has {len(view2[0])} means and {len(view2[1])} stds for "
                f"images of {ctx.image_shape[0]} channels; give one value per channel"
            )

    def begin_epoch(self, epoch: int) -> EpochPlan:
        first = self.hp.view
        second = "autoaugment_cutout" if self.hp.view2_input_stats is None else "autoaugment_weak"
        views = (first, second) if self.hp.ratio_consistency > 0 else (first,)
        stream = Stream(
            self.ctx.train_indices,
            self.ctx.noisy_labels,
            views=views,
            batch_size=self.hp.batch_size,
        )
        return EpochPlan(streams={"all": stream})

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        part = batch["all"]
        views = list(part.views)
        if len(views) == 2 and self.hp.view2_input_stats is not None:
            own = renormalise(views[1], self.hp.input_stats, self.hp.view2_input_stats)
            views[1] = cutout(own, self.ctx.generator)
        with self.autocast():
            outputs = self.net(torch.cat(views)).float()
        logits, logits2 = outputs.chunk(2) if len(part.views) == 2 else (outputs, None)
        onehot = F.one_hot(part.labels, self.ctx.num_classes).float()
        loss = sop_loss(
            logits,
            logits2,
            onehot,
            self.noise.u[part.indices],
            self.noise.v[part.indices],
            self.hp.ratio_consistency,
            self.hp.ratio_balance,
        )
        # u, v and the network are disjoint: stepping u/v after the network (the official code
        # steps it first) gives the same update from the same backward
        self.noise_optimizer.zero_grad(set_to_none=True)
        self.step(loss, self.optimizer, self.hp.clip_norm)
        self.noise_optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def diagnostics(self) -> Diagnostics:
        flagged = self.noise.u.squeeze(1).pow(2).clamp(0, 1) > self.hp.noise_threshold
        return Diagnostics(selected=~flagged, flagged=flagged)
