"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): the L_q loss, robust as q -> 1."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from nlbench.methods.api import Choice, SingleNetwork, SingleNetworkHParams, register
from nlbench.methods.api.search import Distribution
from nlbench.methods.toolkit.optim import ScheduleName


@register("gce")
class GCE(SingleNetwork):
    """GCE (NeurIPS 2018): the L_q loss (1 - p_y^q) / q on the noisy labels, q = 0.7.

    Averaged over the batch; it is CE as q -> 0 and MAE at q = 1.

    The paper has no code of its own; the recipe is that of the port it points readers to,
    AlanChou/Truncated-Loss: the loss of `TruncatedLoss.py` l.16-20 with every weight 1, q = 0.7
    (l.9), CIFAR ResNet-34 (`main.py` l.130, `models/resnet.py`), SGD lr 0.01, momentum 0.9,
    weight decay 1e-4, batch 128 (`main.py` l.30-35, 148), 120 epochs with lr x0.1 at 40 and 80
    (its README; CIFAR-100 suites set 150 epochs and milestones 80, 120), crop + flip.
    Departure: the paper's truncated variant (pruning samples with p_y <= 0.5 every 10 epochs) is
    not this method; this is plain L_q.

    Inputs (AlanChou/Truncated-Loss@fef5908 `main.py` l.54-116): RandomCrop(32, padding=4) + flip,
    then ToTensor + Normalize, with CIFAR-10 (0.491, 0.482, 0.447) / (0.247, 0.243, 0.262) and
    CIFAR-100 (0.507, 0.487, 0.441) / (0.267, 0.256, 0.276); the train and test (batch 100) loaders
    keep their last partial batch. No paper suite ships for GCE: `input_stats` None takes the CIFAR
    loaders' constants, GCE's on CIFAR-100 but not on CIFAR-10 (std 0.2023 against 0.247: inputs
    22 % larger); set `input_stats: [[0.491, 0.482, 0.447], [0.247, 0.243, 0.262]]` for its
    CIFAR-10 pipeline. The engine drops a pass's last partial batch (`StreamSampler` says why that
    cannot matter).
    """

    class HParams(SingleNetworkHParams):
        epochs: int = Field(120, ge=1)
        network: str = "resnet34"
        lr: float = Field(0.01, gt=0)
        weight_decay: float = Field(1e-4, ge=0)
        schedule: ScheduleName = "multistep"
        milestones: tuple[int, ...] = (40, 80)
        q: float = Field(0.7, gt=0, le=1)
        search_space: ClassVar[dict[str, Distribution]] = {"q": Choice((0.1, 0.3, 0.5, 0.7, 0.9))}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        p_y = logits.float().softmax(dim=1).gather(1, labels[:, None]).squeeze(1)
        return ((1 - p_y.pow(self.hp.q)) / self.hp.q).mean()
