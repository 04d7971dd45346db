"""Cross-entropy on the noisy labels: the baseline every method must beat."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from harness.optim import OptimizerName, ScheduleName, make_optimizer, make_schedule
from harness.plan import Batch, EpochPlan, Stream
from methods.base import Method, MethodHParams, register


@register("ce")
class CrossEntropy(Method):
    """Standard training on the noisy labels (the "Standard"/"Cross-Entropy" row of every table).

    Defaults are the PreAct-ResNet18 protocol that SSR and DivideMix compare against (SGD lr 0.02,
    momentum 0.9, weight decay 5e-4, cosine to lr/50, batch 128, crop+flip). Paper suites that
    compare with Co-teaching set its protocol instead (cnn9, Adam 1e-3, `coteaching` schedule, no
    augmentation), so every baseline runs under the protocol of the method it is compared with.
    """

    class HParams(MethodHParams):
        """`milestones` are the epochs where `multistep` multiplies the lr by 0.1."""

        epochs: int = Field(300, ge=1)
        network: str = "preact_resnet18"
        optimizer: OptimizerName = "sgd"
        lr: float = Field(0.02, gt=0)
        momentum: float = Field(0.9, ge=0)
        weight_decay: float = Field(5e-4, ge=0)
        schedule: ScheduleName = "cosine"
        eta_min_ratio: float = Field(1 / 50, ge=0)
        decay_start: int = Field(80, ge=0)
        milestones: tuple[int, ...] = ()
        batch_size: int = Field(128, ge=1)
        view: Literal["weak", "none"] = "weak"

        @model_validator(mode="after")
        def _milestones_for_multistep(self):
            if self.schedule == "multistep" and not self.milestones:
                raise ValueError("schedule 'multistep' needs milestones, e.g. [150, 225]")
            return self

    def __init__(self, ctx, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.net = ctx.network(hp.network, **hp.network_options)
        self.optimizer = make_optimizer(self.net.parameters(), hp.optimizer, hp.lr, hp.momentum,
                                        hp.weight_decay)
        self.schedule = make_schedule(self.optimizer, hp.schedule, hp.epochs, hp.eta_min_ratio,
                                      milestones=hp.milestones, decay_start=hp.decay_start)

    def begin_epoch(self, epoch: int) -> EpochPlan:
        stream = Stream(self.ctx.train_indices, self.ctx.noisy_labels, views=(self.hp.view,),
                        batch_size=self.hp.batch_size)
        return EpochPlan(streams={"all": stream})

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch["all"].views[0], batch["all"].labels
        loss = F.cross_entropy(self.net(x), y)
        self.step(loss, self.optimizer)
        return {"loss": loss.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
