"""The noisy validation split: the held-out labels a practitioner actually has.

Model selection on the clean test set is optimistic by construction; a split of the *noisy*
training set is what is available in practice. It is a pure function of the noisy labels (so of
the dataset and the noise draw), the fraction and the seed.
"""

from __future__ import annotations

import numpy as np


def noisy_validation_split(
    noisy_labels: np.ndarray, num_classes: int, fraction: float, seed: int
) -> np.ndarray:
    """Sorted indices of the held-out samples: from each class c (by *noisy* label) of n_c
    samples, round(fraction * n_c) drawn without replacement, classes in order, with
    `numpy.random.default_rng(seed)`. A class with a single sample keeps it for training."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in range(num_classes):
        members = np.flatnonzero(noisy_labels == c)
        count = min(int(round(fraction * len(members))), len(members) - 1)
        if count > 0:
            held.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
