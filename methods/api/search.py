"""Search spaces: the knobs a method's paper tunes, declared once beside its hyperparameters.

A method's `HParams.search_space` maps hyperparameter names to distributions; a suite with
`search: {trials: N, seed: S}` runs its defaults as trial 0 and N - 1 configurations drawn from
the space (random search), each an ordinary run with its own record. The report then picks a
configuration per cell by noisy-validation accuracy, never by the test set.
"""

from __future__ import annotations

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
    space: dict[str, Distribution], seed: int, method_index: int, trial: int
) -> dict[str, Any]:
    """Trial `trial`'s values for one method entry: a pure function of the suite's search seed,
    the entry's position and the trial number, so a resumed or re-expanded search draws the same
    configurations. Names are drawn in sorted order, whatever order the space lists them in."""
    rng = np.random.default_rng([seed, method_index, trial])
    return {name: space[name].draw(rng) for name in sorted(space)}
