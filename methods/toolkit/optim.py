"""Optimisers and per-epoch schedules of the published recipes, shared by every method.

Schedules are `LRScheduler`s stepped once per epoch after evaluation (the engine calls
`Method.end_epoch`), so they are checkpointed with the method like any other scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LRScheduler,
    MultiStepLR,
)

OptimizerName = Literal["sgd", "adam"]
ScheduleName = Literal["cosine", "coteaching", "multistep", "warm_restarts", "constant"]


def make_optimizer(
    params: Iterable,
    name: OptimizerName,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """SGD (weight decay on every parameter, as SSR/DivideMix do; Nesterov as SCE's) or Adam
    (Co-teaching's)."""
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class CoteachingSchedule(LRScheduler):
    """Co-teaching's `adjust_learning_rate` (main.py): flat lr, then a linear decay, and Adam's
    beta1 from 0.9 to 0.1, both from `decay_start` on.

    lr(e) = lr for e < decay_start, else lr * (epochs - e) / (epochs - decay_start). The official
    code's epochs count from 1 (epoch 0 only evaluates), so our epoch e is its epoch e + 1
    (`offset`); the docstring of methods/coteaching.py explains the choice.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        epochs: int,
        decay_start: int,
        offset: int = 1,
        beta1: tuple[float, float] = (0.9, 0.1),
    ) -> None:
        self.epochs, self.decay_start, self.offset, self.beta1 = epochs, decay_start, offset, beta1
        super().__init__(optimizer)

    def _official_epoch(self) -> int:
        return self.last_epoch + self.offset

    def get_lr(self) -> list[float]:
        e = self._official_epoch()
        factor = (
            1.0
            if e < self.decay_start
            else max(0, self.epochs - e) / max(1, self.epochs - self.decay_start)
        )
        return [base * factor for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        beta = self.beta1[0] if self._official_epoch() < self.decay_start else self.beta1[1]
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (beta, group["betas"][1])


def make_schedule(
    optimizer: torch.optim.Optimizer,
    name: ScheduleName,
    epochs: int,
    eta_min_ratio: float = 1 / 50,
    milestones: tuple[int, ...] = (),
    decay_start: int = 80,
    gamma: float = 0.1,
    restart_period: int = 10,
    period: int | None = None,
) -> LRScheduler:
    """cosine to lr*eta_min_ratio over `epochs` (SSR), Co-teaching's, multistep x`gamma`, cosine
    with warm restarts every `restart_period` epochs down to lr*eta_min_ratio (ELR's CIFAR-10), or
    flat.

    `epochs` is always the number of epochs trained; for `coteaching` that is the official
    n_epoch - 1 (see `official_coteaching_schedule`). `period` is a cosine's half-period when it
    is not the run's length (UNICON's T_max 280 over 351 epochs: the lr rises again after it).
    """
    if name == "cosine":
        base = optimizer.param_groups[0]["lr"]
        return CosineAnnealingLR(optimizer, T_max=period or epochs, eta_min=base * eta_min_ratio)
    if name == "coteaching":
        return official_coteaching_schedule(optimizer, epochs, decay_start)
    if name == "multistep":
        return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "warm_restarts":
        base = optimizer.param_groups[0]["lr"]
        return CosineAnnealingWarmRestarts(
            optimizer, T_0=restart_period, eta_min=base * eta_min_ratio
        )
    return MultiStepLR(optimizer, milestones=[], gamma=1.0)


def official_coteaching_schedule(
    optimizer: torch.optim.Optimizer, trained_epochs: int, decay_start: int
) -> CoteachingSchedule:
    """Co-teaching's plan exactly as its main.py runs it, for `trained_epochs` trained epochs.

    The official loop is `for epoch in range(1, n_epoch)`: epoch 0 only evaluates the random
    initialisation, so n_epoch = 200 trains 199 epochs. Our epoch e is the official epoch e + 1
    (`offset=1`) and the plan's horizon is n_epoch = trained_epochs + 1, so the last trained epoch
    runs at lr / (n_epoch - decay_start) as the official one does, never at lr 0.
    """
    return CoteachingSchedule(
        optimizer, epochs=trained_epochs + 1, decay_start=decay_start, offset=1
    )
