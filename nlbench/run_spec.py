"""A run spec: the typed, resolved run (`nlbench.specs`) with the identity reports and stores
use: its run id (a hash of the canonical spec, data files by content and image folders by their
listing), its data id, and the names tables and progress lines give it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from nlbench.data.datasets import DATASETS
from nlbench.data.files import content_id, folder_manifest
from nlbench.data.noise import NOISE_MODELS
from nlbench.specs import DatasetSpec, MethodSpec, NoiseSpec, NumericEngine, SelectionSpec


class RunSpec(BaseModel):
    """Everything that determines one run's result; its hash is the run id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str
    dataset: DatasetSpec
    noise: NoiseSpec
    method: MethodSpec
    seed: int
    engine: NumericEngine | None = None
    selection: SelectionSpec | None = None
    """The held-out noisy validation split or the dataset's own validation set (None: no
    selection split)."""

    @property
    def run_id(self) -> str:
        """Hash of the canonical spec. The dataset's `root` and `label` are left out, data and
        label files count by their content and image folders by their listing, so moving data
        keeps results.

        `engine` holds only the engine options that change the numbers (`amp: false`,
        `cpu_threads`), so a fp32 rerun of a bf16 sweep is new runs and the two never share a
        leaderboard cell; defaults leave it out of the hash.
        """
        body: dict[str, Any] = {
            "suite": self.suite,
            "dataset": dataset_identity(self.dataset),
            "noise": self.noise.model_dump() | {"options": _noise_by_content(self.noise)},
            "method": self.method.model_dump(exclude_none=True),
            "seed": self.seed,
        }
        if self.engine is not None:
            body["engine"] = self.engine.model_dump(exclude_none=True)
        if self.selection is not None:  # the headline is how to read the runs, not what runs
            body["selection"] = self.selection.model_dump(exclude_none=True, exclude={"headline"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def data_id(self) -> str:
        """A digest of the data this run reads (loader, options, file contents)."""
        body = [dataset_identity(self.dataset), _noise_by_content(self.noise)]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]

    def noise_label(self) -> str:
        """The noise as tables and progress lines name it: model and ratio (or, for a model
        whose rate is read, its options other than label files)."""
        ratio = self.noise.ratio
        shown = (
            f"{ratio:g}"
            if ratio is not None
            else ",".join(f"{k}={v}" for k, v in noise_label_options(self.noise).items())
        )
        return f"{self.noise.model} {shown}".strip()

    def describe(self) -> str:
        """The run in one line: method | dataset | noise | seed."""
        return (
            f"{self.method.name} | {dataset_label(self.dataset)} | {self.noise_label()} | "
            f"seed {self.seed}"
        )


def _file_options(registry: dict[str, Any], name: str) -> tuple[str, ...]:
    entry = registry.get(name)
    return entry.files if entry is not None else ()


def _by_content(options: dict[str, Any], files: tuple[str, ...]) -> dict[str, Any]:
    """`options` with each data or label file replaced by its content id, so a moved file keeps
    its runs and a changed one gets new runs (a missing file keeps its path)."""
    options = dict(options)
    for key in files:
        if isinstance(options.get(key), str):
            options[key] = content_id(options[key]) or options[key]
    return options


def _noise_by_content(noise: NoiseSpec) -> dict[str, Any]:
    return _by_content(noise.options, _file_options(NOISE_MODELS, noise.model))


def dataset_identity(dataset: DatasetSpec) -> dict[str, Any]:
    """What makes a dataset entry's data: its loader and options, files by content, a folder of
    images by its listing (`manifest`); not where the data lives (`root`) or what reports call
    it (`label`)."""
    identity: dict[str, Any] = {
        "name": dataset.name,
        "options": _by_content(dataset.options, _file_options(DATASETS, dataset.name)),
    }
    info = DATASETS.get(dataset.name)
    if info is not None and info.folder and dataset.root:
        manifest = folder_manifest(dataset.root)
        if manifest is not None:
            identity["manifest"] = manifest
    return identity


def dataset_label(dataset: DatasetSpec) -> str:
    """How reports and progress lines name a dataset: its `label`, else a data file's stem, else
    the loader's name."""
    if dataset.label:
        return dataset.label
    for key in _file_options(DATASETS, dataset.name):
        value = dataset.options.get(key)
        if isinstance(value, str):
            return Path(value).stem
    return dataset.name


def label_options(dataset: DatasetSpec) -> dict[str, Any]:
    """A dataset's options other than its data files (the label names those)."""
    files = _file_options(DATASETS, dataset.name)
    return {k: v for k, v in dataset.options.items() if k not in files}


def noise_label_options(noise: NoiseSpec) -> dict[str, Any]:
    """A noise entry's options other than its label files (a path says nothing in a table)."""
    files = _file_options(NOISE_MODELS, noise.model)
    return {k: v for k, v in noise.options.items() if k not in files}
