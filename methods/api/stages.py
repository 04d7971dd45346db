"""Training in stages, as a part of the method API: a method declares its stages once and owns
no stage bookkeeping.

Forward correction trains a network that estimates T, then a fresh one through T; Confident
Learning trains K fold networks, then one on the samples cleanlab keeps. Each stage is a network
with its own optimiser and schedule over its own epochs. Hand-rolled, every such method worked out
its stage from the epoch number, switched the network in `train_step`, `predict` and `end_epoch`,
and had to remember that the default `end_epoch` steps every schedule it finds (a forgotten
override restarts a later stage's schedule early). Here the API owns all of it:

* which stage an epoch belongs to (stages run in the order declared, each `epochs` long);
* the network that trains, is scored and whose schedule alone is stepped: the current stage's;
* the plan's `phase` (the stage's name) and `interim` flag (an earlier network's epochs, never
  selected by any rule);
* the stage index in checkpoints, so a resumed run is in the stage it left.

A method adds its stages in `__init__` (`self.add_stage("estimate", 120, interim=True)`), says
which samples a stage trains on (`stage_samples`, default: all) and with which loss
(`stage_loss`), and acts when a stage ends (`finish_stage`: predict a fold, estimate T).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.method import Method
from nlbench.methods.api.plan import Batch, EpochPlan, Stream
from nlbench.methods.api.single_network import SingleNetworkHParams, recipe_optimiser


@dataclass
class Stage:
    """One stage: its name (the epochs' phase), length, network, optimiser and schedule, and
    whether its epochs are interim (a network other than the method's final one)."""

    name: str
    epochs: int
    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRScheduler
    interim: bool = False


class StagedNetworks(Method):
    """A method trained in stages of one network each, on the single-network recipe."""

    HParams = SingleNetworkHParams

    def __init__(self, ctx: MethodContext, hp: SingleNetworkHParams) -> None:
        super().__init__(ctx, hp)
        self.hp: SingleNetworkHParams = hp
        self.stages: list[Stage] = []
        self.current = 0

    def add_stage(
        self, name: str, epochs: int, interim: bool = False, net: nn.Module | None = None
    ) -> Stage:
        """Declare the next stage: `net` (a fresh network by default) with the recipe's
        optimiser and a schedule over the stage's own `epochs`."""
        net = self.build_network() if net is None else net
        optimizer, schedule = recipe_optimiser(net, self.hp, max(1, epochs))
        self.stages.append(Stage(name, epochs, net, optimizer, schedule, interim))
        return self.stages[-1]

    @property
    def stage(self) -> Stage:
        return self.stages[self.current]

    def stage_at(self, epoch: int) -> int:
        """The index of the stage epoch `epoch` belongs to (the last one past the end)."""
        end = 0
        for k, stage in enumerate(self.stages):
            end += stage.epochs
            if epoch < end:
                return k
        return len(self.stages) - 1

    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Finish every stage the epoch has left behind, then plan the current one."""
        target = self.stage_at(epoch)
        while self.current < target:
            self.finish_stage(self.stage)
            self.current += 1
        stream = Stream(self.stage_samples(self.stage), self.ctx.noisy_labels,
                        views=(self.hp.view,), batch_size=self.hp.batch_size)  # fmt: skip
        return EpochPlan({"all": stream}, phase=self.stage.name, interim=self.stage.interim)

    def finish_stage(self, stage: Stage) -> None:  # noqa: B027 - optional hook
        """Called once when `stage` ends, before the next one plans its first epoch."""

    def stage_samples(self, stage: Stage) -> torch.Tensor:
        """The training-set ids `stage` trains on: all of them by default."""
        return self.ctx.train_indices

    @abstractmethod
    def stage_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The current stage's loss on a batch's logits (read `self.stage` to tell stages)."""

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        part = batch["all"]
        with self.autocast():
            logits = self.stage.net(part.views[0])
        loss = self.stage_loss(logits, part.labels)
        self.step(loss, self.stage.optimizer, self.hp.clip_norm)
        return {"loss": loss.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.stage.net(images)

    def end_epoch(self, epoch: int) -> None:
        """Only the current stage's schedule steps: a later stage's starts when it does."""
        self.stage.schedule.step()

    def extra_state(self) -> dict[str, Any]:
        return {"stage": self.current}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.current = state["stage"]
