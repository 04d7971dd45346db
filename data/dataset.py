"""The in-memory dataset every loader returns and every method trains on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A labelled image dataset with a clean train/test split, held as uint8 NCHW arrays.

    uint8 keeps a CIFAR-sized set at 150 MB so the engine can hold it on the device for a whole run;
    normalisation happens on the device with `mean`/`std` (per channel, on the 0..1 scale).
    `family` names the label space (e.g. "cifar10", "cifar100", "digits", "mnist"): noise models use
    it to pick their class maps. `train_index` maps each train image to its index in the original
    dataset's standard order, so real label files (CIFAR-N) apply to subsets; None means 0..N-1.
    `augment` is the weak augmentation the dataset's published recipes use: "crop_flip" or "none".
    """

    name: str
    family: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"
    train_index: np.ndarray | None = None
    coarse_train: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]
