"""The CIFAR recipe of Patrini et al. (CVPR 2017, giorgiop/loss-correction), shared by the methods
whose CIFAR numbers come from its tables: forward correction and bootstrapping."""

from __future__ import annotations

from pydantic import Field

from nlbench.methods.api import SingleNetworkHParams
from nlbench.methods.toolkit.optim import ScheduleName


class PatriniRecipe(SingleNetworkHParams):
    """CIFAR-10 as `models.py` trains it: the CIFAR ResNet (`resnet_cifar`, 6n+2 layers, 16/32/64
    filters), SGD lr 0.1, momentum 0.9, Keras l2 1e-4 (= weight decay 2e-4: Keras adds
    l2 * |w|^2 to the loss, PyTorch's decay is the gradient 2 l2 w), lr 0.1 up to epoch 40, 0.01
    up to 80, 0.001 after (0-based milestones 41 and 81), 120 epochs, batch 128, crop + flip
    standing in for its random shifts. CIFAR-100 suites set 150 epochs, milestones 81 and 121,
    weight decay 2e-3 and 44 layers. Departures: Keras regularises only the conv and dense kernels,
    SGD's weight decay here every parameter (biases and BatchNorm too); its images are mean-
    subtracted per pixel, here normalised per channel."""

    epochs: int = Field(120, ge=1)
    network: str = "resnet_cifar"
    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(2e-4, ge=0)
    schedule: ScheduleName = "multistep"
    milestones: tuple[int, ...] = (41, 81)
