"""Early-learning regularisation (Liu et al., NeurIPS 2020): keep the network close to what it
predicted early, before it memorised the wrong labels."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from nlbench.methods.api import (
    Choice,
    Diagnostics,
    MethodContext,
    SingleNetwork,
    SingleNetworkHParams,
    register,
)
from nlbench.methods.api.search import Distribution
from nlbench.methods.toolkit.optim import ScheduleName


def elr_update(
    targets: torch.Tensor, indices: torch.Tensor, probs: torch.Tensor, beta: float
) -> None:
    """t_i <- beta t_i + (1 - beta) p_i / sum_k p_ik for the batch's samples, in place; `probs`
    are the clamped predictions, detached here (the targets carry no gradient)."""
    p = probs.detach()
    targets[indices] = beta * targets[indices] + (1 - beta) * p / p.sum(dim=1, keepdim=True)


def elr_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    indices: torch.Tensor,
    beta: float,
    lam: float,
) -> torch.Tensor:
    """CE(z, y) + lam * mean_i log(1 - <t_i, p_i>), after updating the batch's targets.

    p = softmax(z) clamped to [1e-4, 1 - 1e-4]; the targets are updated first with this batch's
    prediction (`elr_update`), then the regulariser uses them, with the gradient through p only.
    Minimising log(1 - <t, p>) pulls p towards the running average of its own early predictions.
    """
    probs = logits.softmax(dim=1).clamp(1e-4, 1.0 - 1e-4)
    elr_update(targets, indices, probs, beta)
    reg = (1 - (targets[indices] * probs).sum(dim=1)).log().mean()
    return F.cross_entropy(logits, labels) + lam * reg


@register("elr")
class ELR(SingleNetwork):
    """ELR (not ELR+): CE + lambda * log(1 - <t_i, p_i>) with per-sample temporal-ensemble targets.

    Rules as shengliu66/ELR `ELR/model/loss.py` l.17-28 (targets start at zero; predictions clamped
    to [1e-4, 1 - 1e-4]; targets updated every batch, before the loss). Recipe of
    `ELR/config_cifar10.json`: ResNet-34, SGD lr 0.02, momentum 0.9, weight decay 1e-3, batch 128,
    beta 0.7, lambda 3, cosine annealing with warm restarts (T_0 10, eta_min 0.001), 150 epochs,
    stepped once per epoch (`trainer.py` l.123-124); crop + flip. CIFAR-100 suites set beta 0.9,
    lambda 7 and multistep x0.01 at 80, 120 over 150 epochs (`config_cifar100.json`); CIFAR-10
    asymmetric noise beta 0.9, lambda 1, multistep x0.01 at 40, 80 over 120 epochs
    (`config_cifar10_asym.json`).

    Inputs (shengliu66/ELR@934af53 `ELR/data_loader/data_loaders.py`): RandomCrop(32, padding=4) +
    flip, then ToTensor + Normalize, with CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994,
    0.2010) (l.16-25) and CIFAR-100 (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761) (l.46-56),
    which `elr_paper.yaml` sets; plain DataLoaders that keep the last partial batch
    (`base/base_data_loader.py` l.25-37), the test set scored whole in batches of 1,000 (`train.py`
    l.53-60). Departures: the official trains on 45,000 images, 90 % of each clean class, and holds
    the other 5,000 out as a noisy validation set (`data_loader/cifar10.py` l.17-21, l.40-55;
    `cifar100.py` l.20-24, l.44-59); here all 50,000 train, unless a suite's `selection: {split:
    noisy_val, fraction: 0.1}` holds 10 % out (stratified by noisy label, not by clean class); the
    engine drops a pass's last partial batch (`StreamSampler` says why that cannot matter).

    Diagnostics: the labels its targets vote for (argmax t_i), scored against the clean labels
    as `relabel_accuracy`; the method never trains on them.
    """

    class HParams(SingleNetworkHParams):
        epochs: int = Field(150, ge=1)
        network: str = "resnet34"
        lr: float = Field(0.02, gt=0)
        weight_decay: float = Field(1e-3, ge=0)
        schedule: ScheduleName = "warm_restarts"
        restart_period: int = Field(10, ge=1)
        eta_min_ratio: float = Field(0.001 / 0.02, ge=0)
        beta: float = Field(0.7, ge=0, lt=1)
        lam: float = Field(3.0, ge=0)
        search_space: ClassVar[dict[str, Distribution]] = {
            "beta": Choice((0.5, 0.7, 0.9, 0.99)),
            "lam": Choice((1.0, 3.0, 5.0, 7.0, 10.0)),
        }

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.targets = torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        return elr_loss(logits.float(), labels, self.targets, indices, self.hp.beta, self.hp.lam)

    def diagnostics(self) -> Diagnostics:
        return Diagnostics(labels=self.targets.argmax(dim=1))

    def extra_state(self) -> dict[str, Any]:
        return {"targets": self.targets}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.targets.copy_(state["targets"])
