"""Where the engine's uint8 images come from: the device's memory, or files decoded by workers.

Both sources answer one question, "these batches of rows, in this order", with uint8 NCHW tensors
on the device, so the epoch loop, the feature pass and evaluation do not know which one they read.
The engine always knows a pass's batches before it starts (a plan's streams are drawn up front),
which is what lets the streamed source decode ahead in worker processes while the device trains.

* `InMemory`: the whole split on the device (CIFAR's 150 MB); a batch is one gather.
* `Streamed`: `ImageFiles` decoded by a `torch.utils.data.DataLoader` whose sampler yields the
  pass's batches of rows; each worker decodes a whole batch, `prefetch` batches per worker are
  decoded ahead, and nothing else is held. Memory is bounded by workers x prefetch x batch,
  whatever the dataset's size.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from nlbench.data.dataset import Images
from nlbench.data.image_files import ImageFiles


class InMemory:
    """A split held on the device as one uint8 tensor."""

    def __init__(self, images: np.ndarray, device: torch.device) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, rows: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        for chunk in rows:
            yield self.images[chunk.to(self.images.device)]


class _Decode(TorchDataset):
    """A map-style dataset whose item is a whole batch: `files.read(rows)` in a worker."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return self.files.read(rows)


@functools.cache
def fixed_mmap_threshold() -> None:
    """Keep glibc from growing the heap batch after batch (Linux only; once per process).

    glibc raises its mmap threshold each time a large block is freed, so later decoded and
    normalised batches (MBs each) come from the heap instead; the small tensors that outlive
    them (a feature pass's outputs) then pin that heap, and a CPU run's peak memory grew with
    the dataset (+660 MiB over 18,000 64x64 images, measured). M_MMAP_THRESHOLD fixed at
    128 KiB (glibc's default) gives such blocks back when they are freed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


class Streamed:
    """A split that stays on disk, decoded `workers` processes wide (0: in this process)."""

    def __init__(
        self, files: ImageFiles, device: torch.device, workers: int, prefetch: int = 2
    ) -> None:
        fixed_mmap_threshold()
        self.files, self.device = files, device
        self.workers, self.prefetch = workers, prefetch

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, rows: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        if not rows:
            return
        loader = DataLoader(
            _Decode(self.files),
            batch_size=None,
            sampler=[chunk.cpu().numpy() for chunk in rows],
            num_workers=self.workers,
            prefetch_factor=self.prefetch if self.workers else None,
            pin_memory=self.device.type == "cuda",
        )
        for batch in loader:
            yield batch.to(self.device, non_blocking=True)


ImageSource = InMemory | Streamed


def image_source(images: Images, device: torch.device, workers: int) -> ImageSource:
    """The source for a split: streamed when its images are files, on the device otherwise."""
    if isinstance(images, ImageFiles):
        return Streamed(images, device, workers)
    return InMemory(images, device)


def take(images: Images, rows: np.ndarray) -> Images:
    """The images at `rows` (a copy in memory, a shorter file list on disk)."""
    if isinstance(images, ImageFiles):
        return images.subset(rows)
    return images[rows]


def in_order(count: int, size: int) -> list[torch.Tensor]:
    """Rows 0..count-1 in batches of `size`: the feature pass's and evaluation's order."""
    return list(torch.arange(count).split(size))
