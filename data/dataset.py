"""The in-memory dataset every loader returns and every method trains on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nlbench.data.image_files import ImageFiles
from nlbench.errors import DataError

Images = np.ndarray | ImageFiles
"""uint8 NCHW in memory, or files decoded batch by batch (`ImageFiles`)."""


@dataclass(frozen=True)
class EvalSet:
    """A clean-labelled evaluation set besides the test split: a further test set scored every
    epoch (WebVision's ILSVRC2012 validation images of its classes), or a dataset's own
    validation set (Clothing1M's clean list, `Dataset.val`)."""

    name: str
    images: Images
    labels: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """A labelled image dataset with a clean train/test split, held as uint8 NCHW arrays.

    uint8 keeps a CIFAR-sized set at 150 MB so the engine can hold it on the device for a whole run;
    normalisation happens on the device with `mean`/`std` (per channel, on the 0..1 scale).
    `family` names the label space (e.g. "cifar10", "cifar100", "digits", "mnist"): noise models use
    it to pick their class maps. `train_index` maps each train image to its index in the original
    dataset's standard order, so real label files (CIFAR-N) apply to subsets; None means 0..N-1.
    `augment` names the dataset's augmentation recipe (`methods.toolkit.views.RECIPES`):
    "crop_flip" or "none" for the in-memory sets, the official scripts' own for the real-world ones.

    Real-world sets differ in four ways. Their images may be `ImageFiles` that stay on disk.
    `clean_train` is False when `y_train` are the labels as collected (noisy, their clean labels
    unknown): nothing can then be scored against clean training labels. `more_tests` are further
    evaluation sets. `epoch_samples` asks for a fresh class-balanced subsample of that many training
    samples every epoch (Clothing1M's official loaders), drawn by the engine. `val` is a
    validation set of its own.
    """

    name: str
    family: str
    x_train: Images
    y_train: np.ndarray
    x_test: Images
    y_test: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"
    train_index: np.ndarray | None = None
    coarse_train: np.ndarray | None = field(default=None, repr=False)
    clean_train: bool = True
    more_tests: tuple[EvalSet, ...] = ()
    val: EvalSet | None = None
    """A held-out validation set the dataset ships (Clothing1M's clean list); scored only when a
    suite selects on it (`selection: {split: dataset_val}`)."""
    epoch_samples: int | None = None
    crop: int | None = None
    """The network's input side when the recipe crops it from larger decoded images (Clothing1M
    224 of 256, WebVision 299 of 320); None when images enter at their stored size."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.x_train.shape[1:]
        if self.crop is not None:
            return (channels, self.crop, self.crop)
        return (channels, height, width)

    @property
    def streamed(self) -> bool:
        """True when the images stay on disk and are decoded batch by batch."""
        return isinstance(self.x_train, ImageFiles)

    def image_sets(self) -> list[tuple[str, Images]]:
        """Every split's images by name: train, test, the further test sets, the validation set."""
        sets = [("train", self.x_train), ("test", self.x_test)]
        sets += [(extra.name, extra.images) for extra in self.more_tests]
        if self.val is not None:
            sets.append((self.val.name, self.val.images))
        return sets


def check_listed_files(dataset: Dataset) -> None:
    """Every image file a streamed dataset lists exists and is not empty, or one `DataError`
    naming how many are not and the first: a missing image must stop a sweep before its first
    epoch, not fail each run in epoch 0. Decoding every file is `run_bench.py check-data`."""
    for split, images in dataset.image_sets():
        if not isinstance(images, ImageFiles):
            continue
        count, first = images.unreadable()
        if count:
            raise DataError(
                f"{dataset.name}: {count:,} of the {len(images):,} {split} images it lists are "
                f"missing or empty, e.g. {first}; restore them or drop them from its list file "
                "(run_bench.py check-data SUITE also decodes every image)"
            )
