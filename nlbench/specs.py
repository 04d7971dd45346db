"""The typed parts of a run, shared by every layer: what a run is (dataset, noise, method,
selection) and what one epoch of it measured.

A suite entry is resolved once (`nlbench.expansion`) into these frozen models, and from there the
runner, the executors, the engine and the record read fields, never keys of a dict. Their JSON is
the record's `spec` and its `epochs`, so a record read back is the same typed run. This module is
the base layer beside `errors`: it imports nothing of nlbench.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Frozen):
    """A registered loader, the folder or file it reads (`root`, not part of the run id), the
    name reports give it (`label`, neither) and the loader's keyword options."""

    name: str
    root: str | None = None
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    """The loader's keyword options, checked against its signature when the suite is loaded."""


class NoiseSpec(_Frozen):
    """A noise model at one ratio (None where the rate is read, not set), drawn with `seed`."""

    model: str
    ratio: float | None = None
    seed: int
    options: dict[str, Any] = Field(default_factory=dict)


class MethodSpec(_Frozen):
    """A registered method with its fully resolved hyperparameters (validated against its
    `HParams` where the spec was resolved), and in a search its trial and the recipe it varies."""

    name: str
    hparams: dict[str, Any]
    """The method's `HParams` as JSON: every field, the defaults included."""
    trial: int | None = None
    recipe: str | None = None
    """A search's trial number and a digest of the entry's default recipe (trial 0)."""


class SelectionSpec(_Frozen):
    """The run's validation split: a held-out noisy split (`fraction`, `seed`) or the dataset's
    own validation set (`dataset_val`); `headline` is how reports read it, not what runs."""

    split: Literal["noisy_val", "dataset_val"] = "noisy_val"
    fraction: float | None = None
    seed: int | None = None
    headline: Literal["noisy_val", "last"] = "noisy_val"


class NumericEngine(_Frozen):
    """The engine options that change a run's numbers, where they differ from the defaults
    (`amp: false`; `cpu_threads`, the order of a CPU's floating-point reductions)."""

    amp: bool | None = None
    cpu_threads: int | None = None


class EpochLog(_Frozen):
    """One epoch: its stage (`phase`, for methods trained in stages), mean losses, clean test
    accuracy (%), scored diagnostics, seconds per part of the epoch."""

    epoch: int
    phase: str = "train"
    pass_phases: list[str] = Field(default_factory=list)
    """The phase of each pass of an epoch of several (`EpochPlan.followed_by`), in order."""
    interim: bool = False
    """An epoch of a network that is not the method's final one (a stage's); never selected."""
    losses: dict[str, float]
    test_acc: float
    network_acc: dict[str, float] = Field(default_factory=dict)
    """Test accuracy (%) of each network of a method that trains several side by side
    (`Method.predict_each`); `test_acc` is the scored one's."""
    more_test_acc: dict[str, float] = Field(default_factory=dict)
    """Accuracy (%) on the dataset's further clean evaluation sets, by name (mini-WebVision's
    ILSVRC2012 "imagenet")."""
    noisy_val_acc: float | None = None
    """Accuracy (%) on the suite's validation split: the held-out noisy split against its noisy
    labels, or with `selection.split: dataset_val` the dataset's own validation set."""
    diagnostics: dict[str, float] = Field(default_factory=dict)
    seconds: dict[str, float]
    images_per_second: float
