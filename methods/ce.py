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
