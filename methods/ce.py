"""Cross-entropy on the noisy labels: the baseline every method must beat."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from nlbench.methods.api import LogUniform, SingleNetwork, SingleNetworkHParams, register
from nlbench.methods.api.search import Distribution


@register("ce")
class CrossEntropy(SingleNetwork):
    """Standard training on the noisy labels (the "Standard"/"Cross-Entropy" row of every table).

    Defaults are the PreAct-ResNet18 protocol that SSR and DivideMix compare against (SGD lr 0.02,
    momentum 0.9, weight decay 5e-4, cosine to lr/50, batch 128, crop+flip). Paper suites that
    compare with Co-teaching set its protocol instead (cnn9, Adam 1e-3, `coteaching` schedule, no
    augmentation), so every baseline runs under the protocol of the method it is compared with.

    Inputs: those of the protocol it runs under; its defaults are SSR's
    (MrChenFeng/SSR_BMVC2022@849530d `main_cifar.py` l.191-208, 240-242, 280): RandomCrop(32,
    padding=4) + flip, then ToTensor + Normalize with CIFAR-10 (0.4914, 0.4822, 0.4465) /
    (0.2023, 0.1994, 0.2010) or CIFAR-100 (0.507, 0.487, 0.441) / (0.267, 0.256, 0.276); training
    loaders drop their last partial batch, the test loader keeps it. `input_stats` None takes the
    dataset's constants, which for the CIFAR loaders are exactly these; every paper suite sets its
    paper's constants on CE too, since the paper's CE ran through the paper's loader. The engine
    builds this pipeline as is: crop + flip of the uint8 image (zero padding), then x / 255, - mean,
    / std in float32 (torchvision's order and arithmetic), the whole test set scored.
    """

    class HParams(SingleNetworkHParams):
        search_space: ClassVar[dict[str, Distribution]] = {
            "lr": LogUniform(0.005, 0.2),
            "weight_decay": LogUniform(1e-5, 1e-3),
        }

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        return F.cross_entropy(logits, labels)
