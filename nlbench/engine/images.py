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
import multiprocessing
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from nlbench.data.dataset import Images
from nlbench.data.image_files import ImageFiles
from nlbench.errors import DataError


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
    """A map-style dataset whose item is a whole batch: `files.read(rows)` in a worker. A file
    that cannot be decoded comes back as its one-line message, raised by the run's process (the
    DataLoader would wrap it in the worker's traceback)."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor | str:
        try:
            return self.files.read(rows)
        except DataError as err:
            return str(err)


TRIM_EVERY = 16
"""Batches between two `release_free_memory` calls of a streamed pass."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_free_memory() -> None:
    """Give the freed parts of the C heap back to the system (glibc's `malloc_trim(0)`; a no-op
    elsewhere).

    A streamed pass allocates and frees MBs per batch (decoded, normalised and augmented
    images) while small tensors that outlive a batch (ids, losses, outputs) land between them;
    glibc keeps the freed holes resident, and a CPU run's peak memory grew with the dataset
    (SSR: up to +200 MiB from 2,000 to 20,000 64x64 images; with this every 16 batches, the
    same peak at both sizes within its run-to-run spread of about 40 MiB, measured). Trimming
    every 16 batches left throughput unchanged; it changes no number.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class Streamed:
    """A split that stays on disk, decoded `workers` processes wide (0: in this process; also in
    a daemonic process, e.g. a `multiprocessing.Pool` worker, which may not start children)."""

    def __init__(
        self, files: ImageFiles, device: torch.device, workers: int, prefetch: int = 2
    ) -> None:
        self.files, self.device = files, device
        self.workers = 0 if multiprocessing.current_process().daemon else workers
        self.prefetch = prefetch

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, rows: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        if not rows:
            return
        # A generator of its own: a DataLoader otherwise draws its workers' base seed from the
        # global torch generator, which dropout reads, and streamed runs would differ from
        # in-memory ones.
        loader = DataLoader(
            _Decode(self.files),
            batch_size=None,
            sampler=[chunk.cpu().numpy() for chunk in rows],
            num_workers=self.workers,
            prefetch_factor=self.prefetch if self.workers else None,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),
        )
        for number, batch in enumerate(loader, 1):
            if isinstance(batch, str):
                raise DataError(batch)
            yield batch.to(self.device, non_blocking=True)
            if number % TRIM_EVERY == 0:
                release_free_memory()


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
