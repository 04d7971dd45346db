"""Two networks that learn from the small-loss part of each batch: the base Co-teaching,
Co-teaching+ and JoCoR share (their official codes share it too, line for line).

What the three methods have in common, all from Co-teaching's `main.py`:

* two networks of one architecture with different random initialisations, both scored by the
  engine through network 1;
* a forget rate that grows linearly from 0 to tau over the first T_k epochs and then stays at tau,
  where tau is the noise rate "assumed known" (paper Sec. 4);
* Adam at lr 1e-3 with a linear decay and beta1 0.9 -> 0.1 from `decay_start` on;
* 199 trained epochs of batch 128 without augmentation.

Epoch indexing (`main.py:main`, its training loop). The official loop is `for epoch in range(1, n_epoch)` with n_epoch = 200:
epoch 0 only evaluates the random initialisation, so 199 epochs are trained, and each reads
`rate_schedule[epoch]`, `alpha_plan[epoch]` and `beta1_plan[epoch]` with epoch = 1..199. Our
engine's epoch e (0-based) is the official epoch e + 1 throughout, which reproduces every
per-epoch value exactly: the first trained epoch already forgets tau/9 (the code's off-by-one
against the paper's T/T_k), and the last one runs at lr/120, never at 0. Hence `epochs = 199`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from nlbench.errors import ConfigError
from nlbench.methods.api import Choice, Diagnostics, Method, MethodHParams, Uniform
from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.plan import EpochPlan, Stream
from nlbench.methods.api.search import Distribution
from nlbench.methods.api.single_network import capped_steps
from nlbench.methods.toolkit.optim import CoteachingSchedule, official_coteaching_schedule


def official_epoch(epoch: int) -> int:
    """The official code's number for our 0-based epoch (its epoch 0 trains nothing)."""
    return epoch + 1


def forget_rate_at(epoch: int, tau: float, num_gradual: int = 10, exponent: float = 1.0) -> float:
    """The fraction of each batch dropped in our epoch `epoch`: the official `rate_schedule`.

    Official: `rate_schedule = ones(n_epoch) * tau; rate_schedule[:T_k] = linspace(0, tau**c, T_k)`,
    read at the official epoch e + 1. Computed as numpy's linspace computes it (i * step, the end
    point exact) so that `int((1 - rate) * B)` floors exactly as the official code's does.

    The exponent quirk (Co-teaching's `main.py` l.134-135, JoCoR's `algorithm/jocor.py` l.41-42)
    is kept: the code raises the *end point* to c and then jumps to tau at T_k, whereas the
    paper's R(T) = 1 - tau * min(T^c / T_k, 1). Both agree for c = 1, the value of every main table.
    """
    t = official_epoch(epoch)
    if t >= num_gradual:
        return tau
    top = tau**exponent
    if t == num_gradual - 1:
        return top
    return t * (top / (num_gradual - 1))


def small_loss(losses: Tensor, forget_rate: float) -> Tensor:
    """Positions of the int((1 - forget_rate) * n) smallest losses, smallest first (`loss.py:loss_coteaching`).

    The count floors as the official `int(remember_rate * len(batch))`. When it floors to 0 every
    position is kept, the patch Co-teaching+'s code applies; Co-teaching and JoCoR never reach it
    with batches of 128 and forget rates below 0.99. A stable sort breaks ties by batch order.
    """
    order = torch.argsort(losses.detach(), stable=True)
    keep = int((1.0 - forget_rate) * losses.shape[0])
    return order[:keep] if keep > 0 else order


class SmallLossHParams(MethodHParams):
    """The recipe of Co-teaching's main.py for CIFAR-10 (CIFAR-100 suites set decay_start 100).

    `forget_rate` None means tau = the noise's expected flip rate (the paper assumes it known).
    `network` is the 9-layer CNN of Co-teaching's Table 3; `network_options` shrinks it for tests.
    `view` "none" is the official input (no augmentation); "weak" lets a suite that pins one shared
    recipe for all its methods add the dataset's augmentation.
    """

    epochs: int = Field(199, ge=1)
    network: str = "cnn9"
    lr: float = Field(0.001, gt=0)
    decay_start: int = Field(80, ge=0)
    batch_size: int = Field(128, ge=1)
    view: Literal["none", "weak"] = "none"
    forget_rate: float | None = Field(None, ge=0, lt=1)
    num_gradual: int = Field(10, ge=0)
    exponent: float = Field(1.0, gt=0)
    search_space: ClassVar[dict[str, Distribution]] = {
        "forget_rate": Uniform(0.05, 0.85),
        "num_gradual": Choice((5, 10, 15, 20)),
    }
    inputs: Literal["normalised", "unit"] = "unit"
    """[0, 1] pixels: every official loader of the family is `transforms.ToTensor()` alone
    (JoCoR main.py l.68-126, Co-teaching+ main.py l.58-125), and `mlpnet` and `cnn_small` have
    no BatchNorm to absorb another scale."""
    num_iter_per_epoch: int | None = Field(400, ge=0)
    """The official loop's `if i > num_iter_per_epoch: break`: an epoch stops after
    num_iter_per_epoch + 1 batches (401: nothing on CIFAR's 390, but MNIST's 468 become 401).
    None trains every batch of the pass."""


class SmallLossTwoNetworks(Method):
    """Two networks, a forget-rate schedule, one shuffled stream, a record of what trained net 1.

    Subclasses build their optimisers and write `train_step`; `trained_net1` marks the samples
    whose labels reached network 1's update, which is what `diagnostics` reports for the epoch.
    """

    scored_network: ClassVar[str] = "net 1"
    epoch_pool: ClassVar[bool] = True
    HParams: ClassVar[type[SmallLossHParams]] = SmallLossHParams

    def __init__(self, ctx: MethodContext, hp: SmallLossHParams) -> None:
        super().__init__(ctx, hp)
        self.hp: SmallLossHParams = hp
        self.tau = self.assumed_noise_rate(ctx, hp)
        self.net1 = self.build_network()
        self.net2 = self.build_network()
        self.forget_rate = 0.0
        self.epoch = 0
        self.trained_net1 = torch.zeros(
            ctx.num_train, dtype=torch.bool, device=ctx.noisy_labels.device
        )

    def assumed_noise_rate(self, ctx: MethodContext, hp: SmallLossHParams) -> float:
        """tau: `forget_rate` if set, else the noise's expected flip rate, which the paper
        assumes known (`NoiseFacts`): the nominal ratio under the family's own conventions
        (sym_flip, pairflip), r (C - 1) / C under DivideMix's `sym` (its nominal ratio counts
        labels redrawn, some to their true class), r / 2 under CIFAR-10's and MNIST's `asym`
        (five of ten classes mapped; the official JoCoR code halves the rate there too)."""
        if hp.forget_rate is not None:
            return hp.forget_rate
        if ctx.noise.expected_flip_rate is None:
            raise ConfigError(
                f"{self.name}: the forget rate defaults to the noise rate, which the paper assumes "
                "known, but this noise has no nominal ratio (real-world labels); set "
                f"methods.{self.name}.hparams.forget_rate (e.g. an estimate of the noise rate)"
            )
        return ctx.noise.expected_flip_rate

    def schedule_for(self, optimizer: torch.optim.Optimizer) -> CoteachingSchedule:
        """The official linear lr decay and beta1 switch, aligned with our epoch numbering."""
        return official_coteaching_schedule(optimizer, self.hp.epochs, self.hp.decay_start)

    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Set R(T) for this epoch and plan one shuffled pass over all samples (drop_last),
        cut at the official iteration cap."""
        self.epoch = epoch
        self.forget_rate = forget_rate_at(epoch, self.tau, self.hp.num_gradual, self.hp.exponent)
        self.trained_net1.zero_()
        stream = Stream(
            self.ctx.train_indices,
            self.ctx.noisy_labels,
            views=(self.hp.view,),
            batch_size=self.hp.batch_size,
        )
        return EpochPlan(
            streams={"all": stream}, steps=capped_steps(stream, self.hp.num_iter_per_epoch)
        )

    def predict(self, images: Tensor) -> Tensor:
        """Network 1's logits: the official code logs both nets and the paper does not say which
        its tables use; we score net 1 (JoCoR's paper averages the two nets' accuracies)."""
        return self.net1(images)

    def predict_each(self, images: Tensor) -> dict[str, Tensor]:
        """Both networks, as the official `evaluate` scores them each epoch."""
        return {"net1": self.net1(images), "net2": self.net2(images)}

    def diagnostics(self) -> Diagnostics:
        """The samples network 1 was updated on this epoch (for Co-teaching: network 2's picks).

        The official "pure ratio" of a net is the precision of its own picks; we report the picks
        that trained the scored network instead, so precision and recall describe the labels it
        actually learned from. Samples in the dropped last partial batch count as not selected.
        """
        return Diagnostics(selected=self.trained_net1.clone(), assumed_noise_rate=self.tau)
