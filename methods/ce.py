"""Cross-entropy on the noisy labels: the baseline every method must beat."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

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
        epochs: int = 300
        network: str = "preact_resnet18"
        optimizer: OptimizerName = "sgd"
        lr: float = 0.02
        momentum: float = 0.9
        weight_decay: float = 5e-4
        schedule: ScheduleName = "cosine"
        eta_min_ratio: float = 1 / 50
        decay_start: int = 80
        batch_size: int = 128
        view: Literal["weak", "none"] = "weak"

    def __init__(self, ctx, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.net = ctx.network(hp.network, **hp.network_options)
        self.optimizer = make_optimizer(self.net.parameters(), hp.optimizer, hp.lr, hp.momentum,
                                        hp.weight_decay)
        self.schedule = make_schedule(self.optimizer, hp.schedule, hp.epochs, hp.eta_min_ratio,
                                      decay_start=hp.decay_start)

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
