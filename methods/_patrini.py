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
    weight decay 2e-3 and 44 layers. Departure: Keras regularises only the conv and dense kernels,
    SGD's weight decay here every parameter (biases and BatchNorm too).

    Inputs (giorgiop/loss-correction@15a79de `models.py`): the images as floats in 0..255 minus
    the training set's per-pixel mean image, with no division by 255 or by a std (l.209-218;
    CIFAR-100 l.289-299, its std commented out), cast to float32 (l.40-41); training adds Keras'
    random shifts of up to 10 % (nearest-edge fill) and horizontal flips (l.220-229); an epoch is
    390 steps of a generator over 45,000 images that yields a last partial batch each pass
    (l.104-121); the test set is scored whole (l.137-141). The closest the input fields come:
    `input_stats` = (per-channel mean, 1/255 per channel), i.e. x - 255 m_c in 0..255 units, as
    `forward_paper.yaml` sets. Residual departures: the mean is per channel, not per pixel (the
    per-pixel mean image is 8 units rms and 23 at most away from it, against a pixel std of 64,
    measured on 10,000 CIFAR-10 training images); crop + flip of the uint8 image with zero padding
    (padded pixels become -255 m_c) stands in for the shifts with nearest fill; the official
    trains on 45,000 images and keeps the checkpoint with the lowest loss on the other 5,000 noisy
    ones (`experiment.py` l.36, `models.py` l.93-133), here all 50,000 train and the last epoch
    counts."""

    epochs: int = Field(120, ge=1)
    network: str = "resnet_cifar"
    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(2e-4, ge=0)
    schedule: ScheduleName = "multistep"
    milestones: tuple[int, ...] = (41, 81)
