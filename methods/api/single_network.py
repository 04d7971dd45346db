"""One network, one shuffled stream, one loss: the base of every loss-based method.

A loss-based method (CE, GCE, SCE, bootstrapping, ...) differs from cross-entropy only in the loss
it puts on a batch's logits, so it subclasses `SingleNetwork` and writes `loss`; the network,
optimiser, schedule, stream and mixed precision are the base's.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch.optim.lr_scheduler import LRScheduler

from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.method import Method, MethodHParams
from nlbench.methods.api.plan import Batch, EpochPlan, Stream
from nlbench.methods.toolkit.optim import (
    OptimizerName,
    ScheduleName,
    make_optimizer,
    make_schedule,
)


class SingleNetworkHParams(MethodHParams):
    """The PreAct-ResNet18 protocol SSR and DivideMix compare against: SGD lr 0.02, momentum 0.9,
    weight decay 5e-4, cosine to lr/50, batch 128, crop+flip, 300 epochs.

    `milestones` are the epochs where `multistep` multiplies the lr by `gamma`; `decay_start` is
    where the `coteaching` schedule starts its linear decay; `restart_period` is the cycle of
    `warm_restarts`. `clip_norm` clips the gradient's global norm before each step (None: never).
    """

    epochs: int = Field(300, ge=1)
    network: str = "preact_resnet18"
    optimizer: OptimizerName = "sgd"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: ScheduleName = "cosine"
    eta_min_ratio: float = Field(1 / 50, ge=0)
    decay_start: int = Field(80, ge=0)
    milestones: tuple[int, ...] = ()
    gamma: float = Field(0.1, gt=0)
    restart_period: int = Field(10, ge=1)
    cosine_period: int | None = Field(None, ge=1)
    """`cosine`'s T_max when it is not the run's length (None: `epochs`)."""
    clip_norm: float | None = Field(None, gt=0)
    batch_size: int = Field(128, ge=1)
    view: Literal["weak", "none"] = "weak"
    num_iter_per_epoch: int | None = Field(None, ge=0)
    """An epoch stops after num_iter_per_epoch + 1 batches, as the Co-teaching family's loop
    breaks (`if i > num_iter_per_epoch: break`); None trains every batch of the pass."""

    @model_validator(mode="after")
    def _milestones_for_multistep(self):
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("schedule 'multistep' needs milestones, e.g. [150, 225]")
        return self


def capped_steps(stream: Stream, num_iter_per_epoch: int | None) -> int:
    """The steps of one pass over `stream` (drop_last) under the Co-teaching family's iteration
    cap, which stops after num_iter_per_epoch + 1 batches (None: no cap, the whole pass)."""
    steps = max(1, len(stream.indices) // stream.batch_size)
    return steps if num_iter_per_epoch is None else min(steps, num_iter_per_epoch + 1)


def recipe_optimiser(
    net: torch.nn.Module, hp: SingleNetworkHParams, epochs: int
) -> tuple[torch.optim.Optimizer, LRScheduler]:
    """The recipe's optimiser and LR schedule over `epochs` for `net`'s parameters: the one
    construction every network of a single-network recipe (or of a stage) goes through."""
    optimizer = make_optimizer(
        net.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay, hp.nesterov
    )
    schedule = make_schedule(
        optimizer,
        hp.schedule,
        epochs,
        hp.eta_min_ratio,
        milestones=hp.milestones,
        decay_start=hp.decay_start,
        gamma=hp.gamma,
        restart_period=hp.restart_period,
        period=hp.cosine_period,
    )
    return optimizer, schedule


class SingleNetwork(Method):
    """Trains `net` on all noisy labels with `loss(logits, labels, indices)` each step."""

    HParams = SingleNetworkHParams
    epoch_pool = True

    def __init__(self, ctx: MethodContext, hp: SingleNetworkHParams) -> None:
        super().__init__(ctx, hp)
        self.net = self.build_network()
        self.optimizer, self.schedule = self.optimise(self.net, hp.epochs)

    def optimise(
        self, net: torch.nn.Module, epochs: int
    ) -> tuple[torch.optim.Optimizer, LRScheduler]:
        """The recipe's optimiser and LR schedule over `epochs` for `net`'s parameters."""
        return recipe_optimiser(net, self.hp, epochs)

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A subclass writes `loss(logits, labels, indices) -> scalar` (the samples' train-set ids
        are there for methods that keep per-sample state), or its own `train_step` (MixUp on mixed
        batches, SOP with two views); one without either is refused where it is defined."""
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "loss") and cls.train_step is SingleNetwork.train_step:
            raise TypeError(f"{cls.__name__} needs a loss(logits, labels, indices) or a train_step")

    def begin_epoch(self, epoch: int) -> EpochPlan:
        stream = Stream(
            self.ctx.train_indices,
            self.ctx.noisy_labels,
            views=(self.hp.view,),
            batch_size=self.hp.batch_size,
        )
        return EpochPlan(
            streams={"all": stream}, steps=capped_steps(stream, self.hp.num_iter_per_epoch)
        )

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        part = batch["all"]
        with self.autocast():
            loss = self.loss(self.net(part.views[0]), part.labels, part.indices)
        self.step(loss, self.optimizer, self.hp.clip_norm)
        return {"loss": loss.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
