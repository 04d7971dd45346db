"""Images that stay on disk: a list of files and the fixed size each decodes to.

A million Clothing1M images are about 150 GB as uint8 at 224x224, so a real-world dataset keeps
its images as files and the engine decodes only the batches it needs, in worker processes
(`nlbench.engine.images`). Each image decodes to one fixed square size so batches stack and the
device-side augmentations (`methods.toolkit.views`) work on them as on CIFAR:

* `resize=None`: the image is used as it is and must already be `size` x `size` (ANIMAL-10N's
  64x64; the official loader batches them untouched).
* `resize=R`: torchvision's `Resize(R)` (shorter side to R, aspect kept, bilinear with
  antialiasing, as PIL) and then the central `size` x `size` square (`size` = R). The recipes'
  random crops and centre crops of the network input then happen on the device from that square.

Paths are stored as one numpy bytes array (not a list of str), so a million of them cost tens of
MB and pickle to worker processes in one piece.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as tvf

from nlbench.errors import DataError


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """`paths` (bytes, relative to `root`) decoded to uint8 RGB [3, size, size] each."""

    root: str
    paths: np.ndarray
    size: int
    resize: int | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W), as an in-memory uint8 array would have."""
        return (len(self.paths), 3, self.size, self.size)

    def path(self, row: int) -> Path:
        return Path(self.root) / self.paths[row].decode()

    def decode(self, row: int) -> torch.Tensor:
        """Image `row` as uint8 [3, size, size]; a file that cannot be decoded, or one of the wrong
        size when there is no resize, raises `DataError` naming it."""
        path = self.path(row)
        try:
            image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
        except (OSError, RuntimeError) as err:
            raise DataError(f"cannot decode image {path} ({err})") from err
        return self.fit(image, path)

    def fit(self, image: torch.Tensor, path: Path) -> torch.Tensor:
        """A decoded RGB image (on any device) brought to [3, size, size]: Resize and the central
        square, or the size check when there is no resize."""
        if self.resize is not None:
            image = tvf.resize(image, [self.resize], antialias=True)
            return tvf.center_crop(image, [self.size, self.size])
        if image.shape[1:] != (self.size, self.size):
            raise DataError(
                f"image {path} is {image.shape[2]}x{image.shape[1]}; this dataset's images are "
                f"all {self.size}x{self.size}"
            )
        return image

    def read(self, rows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The images at `rows`, stacked as uint8 [len(rows), 3, size, size]."""
        out = torch.empty((len(rows), 3, self.size, self.size), dtype=torch.uint8)
        for slot, row in enumerate(np.asarray(rows).tolist()):
            out[slot] = self.decode(row)
        return out

    def unreadable(self) -> tuple[int, Path | None]:
        """How many listed files are missing or empty, and the first of them: one `stat` a file,
        no decoding, so a million files cost seconds (a check before any epoch trains: 0.5 s for
        200,000 files with a warm page cache on a 2-core CPU machine, measured)."""
        count, first = 0, None
        root = os.fsencode(self.root)
        for name in self.paths.tolist():
            try:
                empty = os.stat(os.path.join(root, name)).st_size == 0
            except OSError:
                empty = True
            if empty:
                count += 1
                first = first or Path(self.root) / name.decode()
        return count, first

    def subset(self, rows: np.ndarray) -> ImageFiles:
        """The files at `rows`, in that order."""
        return ImageFiles(self.root, self.paths[rows], self.size, self.resize)


def encode_paths(names: list[str]) -> np.ndarray:
    """Relative paths as the bytes array `ImageFiles` keeps."""
    return np.array([name.encode() for name in names], dtype=np.bytes_)


def class_balanced_subsample(
    labels: np.ndarray, num_samples: int, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """One epoch's subsample of a large noisy training set, by the official Clothing1M loaders'
    rule (SSR `datasets/dataloader_clothing1m.py` l.34-51, DivideMix `dataloader_clothing1M.py`).
    The official code draws with Python's global `random`, one stream over the whole run; here
    `rng` (the engine seeds it by run seed and epoch, so a resumed run redraws the same pools).

    Shuffle all indices; walk them in that order and keep an index while its (noisy) class has
    fewer than num_samples / C kept and fewer than num_samples are kept in all; shuffle the kept
    ones. So each class contributes at most ceil(num_samples / C) samples, a short class is not
    refilled from the others, and the result has at most `num_samples` indices.
    """
    order = rng.permutation(len(labels))
    shuffled = labels[order]
    rank = np.zeros(len(order), dtype=np.int64)
    for c in range(num_classes):
        members = shuffled == c
        rank[members] = np.arange(int(members.sum()))
    kept = order[rank < num_samples / num_classes][:num_samples]
    return rng.permutation(kept)
