"""What a method asks the engine to feed it in one epoch: named streams of samples and views.

A method declares its data needs instead of coding a loader: the engine turns an `EpochPlan` into
batches on the device, so every method gets the same sampling and augmentation machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

Sampling = Literal["shuffle", "class_balanced"]
View = str
"""A registered view name (`nlbench.methods.toolkit.views`): "weak", "strong", "none", or a
method's own."""


@dataclass
class Stream:
    """Which samples to draw, with which labels, how, and which augmented views of each.

    `indices` are train-set sample ids; `labels` is a label for *every* train sample (length N), read
    at the drawn ids, so a method can hand its corrected labels over whole. `shuffle` walks a fresh
    permutation of `indices` and starts another when it runs out (drop_last batches); `class_balanced`
    is SSR's sampler: every class present gets as many draws as the largest one
    (its `utils/classbalancedsampler.py`).
    """

    indices: torch.Tensor
    labels: torch.Tensor
    views: tuple[View, ...] = ("weak",)
    sampling: Sampling = "shuffle"
    batch_size: int = 128


@dataclass
class EpochPlan:
    """The streams of one epoch and how many steps it lasts.

    `steps=None` means one pass over the first stream (len // batch_size, at least 1). `phase`
    names the stage of a method whose training has stages (forward correction first trains the
    network that estimates T, then the corrected one); the engine records it with the epoch.
    `interim` marks an epoch that trains a network other than the method's final one (forward
    correction's estimating network, Confident Learning's fold networks): its accuracy is
    recorded but no epoch-selection rule (best, noisy-validation, last 10) may pick it.
    `followed_by` is a second pass in the same epoch, run after this one's steps with its own
    streams (DivideMix trains network 1 for a pass on its split, then network 2 on the other);
    the batches a step gets name the streams of the pass they come from.
    """

    streams: dict[str, Stream]
    steps: int | None = None
    phase: str = "train"
    interim: bool = False
    followed_by: EpochPlan | None = None

    def passes(self) -> list[EpochPlan]:
        """This plan and every plan that follows it, in order."""
        chain, plan = [], self
        while plan is not None:
            chain.append(plan)
            plan = plan.followed_by
        return chain


@dataclass
class StreamBatch:
    """One batch of one stream: the sample ids, their labels and one tensor per requested view."""

    indices: torch.Tensor
    labels: torch.Tensor
    views: list[torch.Tensor] = field(default_factory=list)


Batch = dict[str, StreamBatch]
