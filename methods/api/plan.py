"""What a method asks the engine to feed it in one epoch: named streams of samples and views.

A method declares its data needs instead of coding a loader: the engine turns an `EpochPlan` into
batches on the device, so every method gets the same sampling and augmentation machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
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

    `steps=None` means one pass over the stream `length_from` names (len // batch_size, at least
    1); a plan of one stream may leave it out, a plan of several must name it (dict order is no
    reason for one stream to set the length). `phase`
    names the stage of a method whose training has stages (forward correction first trains the
    network that estimates T, then the corrected one); the engine records it with the epoch.
    `interim` marks an epoch that trains a network other than the method's final one (forward
    correction's estimating network, Confident Learning's fold networks): its accuracy is
    recorded but no epoch-selection rule (best, noisy-validation, last 10) may pick it.
    `followed_by` is a second pass in the same epoch, run after this one's steps with its own
    streams (DivideMix trains network 1 for a pass on its split, then network 2 on the other);
    the batches a step gets name the streams of the pass they come from. `tag` tells the method
    which pass a batch belongs to: the engine hands it to `train_step(batch, tag)` as its second
    argument (a plan without a tag calls `train_step(batch)`), so no method parses stream names.
    The record keeps the phase of every pass of the epoch.
    """

    streams: dict[str, Stream]
    steps: int | None = None
    phase: str = "train"
    interim: bool = False
    followed_by: EpochPlan | None = None
    then: Callable[[], EpochPlan] | None = None
    """A pass planned only when this one has trained (UNICON selects network 2's samples with
    network 1 as it is after its pass): the engine calls it after this pass's steps, and the
    plan it returns becomes `followed_by`."""
    tag: Hashable | None = None
    length_from: str | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.length_from is None and len(self.streams) > 1:
            raise ValueError(
                f"a plan of {len(self.streams)} streams ({', '.join(self.streams)}) needs `steps` "
                "or `length_from` naming the stream whose pass sets its length"
            )
        if self.length_from is not None and self.length_from not in self.streams:
            raise ValueError(f"length_from '{self.length_from}' names no stream of the plan")
        if self.then is not None and self.followed_by is not None:
            raise ValueError("a plan has either a `followed_by` pass or a `then` that plans one")

    def passes(self) -> list[EpochPlan]:
        """This plan and every plan that follows it, in order (those planned by `then` once
        the engine has planned them)."""
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
