"""What the engine hands a method: the noisy training set, the device, and shared factories.

Clean labels are deliberately absent: a method sees only what a practitioner would have. The
engine keeps them to score `Method.diagnostics()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nlbench.data.noise import NoiseFacts


@dataclass
class MethodContext:
    """Everything a method may use; built once per run by the engine.

    `noise` holds what a method may know of the noise (`nlbench.data.noise.NoiseFacts`): the flip
    rate its model is expected to realise at the nominal ratio (None for real-world noise) and
    whether flips follow a class map. Methods that the paper lets assume the noise rate is known
    (Co-teaching's forget rate) read it here, and say so; no method reads a noise model's name. `rng`/`generator` are seeded from the run seed so a run reproduces.

    `oracle_transition` is the realised noise's transition matrix (row-normalised clean-by-noisy
    counts): aggregate knowledge of the clean labels, set by the engine only for a method whose
    `uses_oracle_transition(hp)` says its hyperparameters name that oracle (forward correction
    with the true T); None for every other run.
    """

    num_classes: int
    image_shape: tuple[int, int, int]
    device: torch.device
    noisy_labels: torch.Tensor
    noise: NoiseFacts
    rng: np.random.Generator
    generator: torch.Generator
    network: Callable[..., nn.Module]
    feature_pass: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    """The engine's pass over the training images in index order (`features` calls it with this
    context's precision), bound to the images alone: nothing reachable from here leads to the
    clean labels."""
    neighbour_index: Callable[[torch.Tensor], object]
    amp_dtype: torch.dtype | None = None
    oracle_transition: torch.Tensor | None = None
    pool: torch.Tensor | None = None
    """This epoch's training samples when the dataset subsamples per epoch (Clothing1M: a fresh
    class-balanced draw each epoch, set by the engine before `begin_epoch`); None: all of them."""
    pool_size: int | None = None
    """The most samples an epoch's pool holds (the dataset's `epoch_samples`); None: no pool."""

    @property
    def num_train(self) -> int:
        return int(self.noisy_labels.shape[0])

    @property
    def train_indices(self) -> torch.Tensor:
        """The ids this epoch trains on: the epoch's pool, or every training sample. A method
        that draws its streams from these and runs its feature passes over them
        (`features(fn, rows=train_indices)`) sets `Method.epoch_pool`."""
        if self.pool is not None:
            return self.pool
        return torch.arange(self.num_train, device=self.noisy_labels.device)

    def features(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]],
        view: str = "weak",
        batch_size: int | None = None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """`fn` applied to every training image in index order (or to those at `rows`, in their
        order), under the same precision as the training steps (`autocast`, read now); outputs
        as float32. The method sets train/eval mode."""
        return self.feature_pass(self.autocast, fn, view, batch_size, rows)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Mixed precision when the engine enabled it (bf16 on CUDA), a no-op otherwise."""
        return autocast_for(self.device, self.amp_dtype)


@contextlib.contextmanager
def autocast_for(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """torch.autocast to `dtype` on `device`, or nothing when `dtype` is None (fp32)."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield
