"""Turning a `Stream` into batches of sample ids: shuffled passes and SSR's class-balanced sampler."""

from __future__ import annotations

import torch

from nlbench.methods.api.plan import Stream


def class_balanced_ids(
    indices: torch.Tensor, labels: torch.Tensor, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """The id list of SSR's `ClassBalancedSampler` (utils/classbalancedsampler.py, num_fold=1).

    With M the largest class count among `indices`, every class present contributes exactly M ids:
    its members tiled ceil(M / n_c) times, the last M entries of the tiled list permuted, the first
    M kept. So the largest class appears once each in random order and smaller classes repeat
    whole before a random remainder. Classes with no member get nothing. Returned ids are in class
    order; the sampler permutes them on every pass.
    """
    labels = labels.cpu()
    indices = indices.cpu()
    counts = torch.bincount(labels, minlength=num_classes)
    top = int(counts.max()) if len(labels) else 0
    parts = []
    for c in range(num_classes):
        n_c = int(counts[c])
        if n_c == 0:
            continue
        tiled = indices[labels == c].repeat(-(-top // n_c))
        tail = torch.randperm(top, generator=generator)
        tiled[-top:] = tiled[-top:][tail]
        parts.append(tiled[:top])
    return torch.cat(parts) if parts else indices[:0]


class StreamSampler:
    """Endless batches of ids for one stream: a fresh permutation on every pass, drop_last.

    A pass shorter than one batch yields the whole pass as a (short) batch, so tiny selections still
    train instead of crashing (the official SSR loop fails when the labelled loader is empty).

    drop_last is SSR's and Confident Learning's rule; the loaders of DivideMix (warm-up), ELR, SOP,
    SCE, GCE and MixUp train a last partial batch instead. Why that cannot matter beyond seed
    noise (argued, not measured): on CIFAR a pass leaves out 50,000 mod 128 = 80 samples, a fresh
    random 80 of its permutation each pass, so every sample is still equally likely to train (0.16 %
    of the sample visits, one step of 391); the schedules step once per epoch, so every step's
    learning rate is unchanged.
    """

    def __init__(self, stream: Stream, num_classes: int, generator: torch.Generator) -> None:
        self.stream = stream
        self.generator = generator
        if stream.sampling == "class_balanced":
            self.pool = class_balanced_ids(
                stream.indices, stream.labels[stream.indices], num_classes, generator
            )
        else:
            self.pool = stream.indices.cpu()
        self.batch_size = stream.batch_size
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    @property
    def batches_per_pass(self) -> int:
        return max(1, len(self.pool) // self.batch_size)

    def next_ids(self) -> torch.Tensor:
        if len(self.pool) == 0:
            raise ValueError("a stream has no samples to draw from")
        size = min(self.batch_size, len(self.pool))
        if self._pos + size > len(self._order):
            self._order = self.pool[torch.randperm(len(self.pool), generator=self.generator)]
            self._pos = 0
        ids = self._order[self._pos : self._pos + size]
        self._pos += size
        return ids
