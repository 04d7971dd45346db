"""Search spaces: the knobs a method's paper tunes, declared once beside its hyperparameters.

A method's `HParams.search_space` maps hyperparameter names to distributions; a suite with
`search: {trials: N, seed: S}` runs its defaults as trial 0 and up to N - 1 distinct
configurations drawn from the space (random search; a small discrete space may hold fewer), each
an ordinary run with its own record. The report then picks a
configuration per cell by noisy-validation accuracy, never by the test set.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Choice:
    """One of `values`, uniformly."""

    values: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high], rounded to 4 decimals so a configuration reads well."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        return round(float(rng.uniform(self.low, self.high)), 4)


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on [low, high] (learning rates, weights), to 3 significant digits."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return float(f"{value:.3g}")


Distribution = Choice | Uniform | LogUniform


def draw_configuration(
    space: dict[str, Distribution], seed: int, entry: str, trial: int, attempt: int = 0
) -> dict[str, Any]:
    """One draw for trial `trial` of a method entry: a pure function of the suite's search seed,
    the entry (its method name and default recipe, not its position in the suite, so adding an
    entry redraws nothing else), the trial and the attempt (a repeat is drawn again). Each knob
    draws from a stream of its own, keyed by its name as DomainBed seeds each hyperparameter, so
    adding a knob to a space leaves every other knob's draws as they were."""
    return {
        name: space[name].draw(
            np.random.default_rng([seed, *_key(entry), trial, attempt, *_key(name)])
        )  # fmt: skip
        for name in sorted(space)
    }


def _key(text: str) -> list[int]:
    """Two 32-bit words of the text's SHA-256: a stable seed component for a name."""
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in (0, 4)]
