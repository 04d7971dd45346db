"""Suites: the YAML schema, validated with pydantic before any data is touched, so `--dry-run`
works without the data and a typo costs seconds, not a sweep; a validation error becomes one line.

A suite names datasets x noise (model, ratios) x methods x seeds; `nlbench.suite_loading` reads
one (with `--set` overrides) and `nlbench.expansion` resolves it into typed run specs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nlbench.data.datasets import DATASETS
from nlbench.data.noise import NOISE_MODELS
from nlbench.engine import EngineOptions
from nlbench.errors import ConfigError, DataError, did_you_mean
from nlbench.published import PaperTable, Reference
from nlbench.registry import validate_options
from nlbench.tracking import TrackingOptions

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetEntry(_Strict):
    """One dataset: a registered loader name, a local root where it needs one, loader options.

    `hparams` are per-method overrides for runs on this dataset, e.g. `{coteaching: {decay_start:
    100}}` for CIFAR-100, so one suite can hold a paper's whole grid. `label` names the dataset in
    reports (default: the loader's name, or an `npz` file's stem); like `root`, it is not part of
    the run id.
    """

    name: str
    root: str | None = None
    label: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    options: dict[str, Any] = Field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_loader_and_options(self) -> DatasetEntry:
        """The loader exists and takes these options, before any data is touched."""
        info = DATASETS.lookup(self.name)
        validate_options(info.options_model, "dataset", self.name, self.options, DataError)
        return self


class NoiseEntry(_Strict):
    """One noise model and its ratios; `seed` pins the noise seed (default: the run seed).

    `hparams` are per-method overrides for these ratios, e.g. `{ssr: {theta_r: 0.8}}` where the
    official README uses another threshold at high noise.
    """

    model: str
    ratios: list[float | None] = Field(default_factory=lambda: [None])
    seed: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        NOISE_MODELS.lookup(model)
        return model

    @model_validator(mode="after")
    def _known_options(self) -> NoiseEntry:
        entry = NOISE_MODELS.lookup(self.model)
        validate_options(entry.options_model, "noise model", self.model, self.options, DataError)
        return self

    @field_validator("ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float | None]) -> list[float | None]:
        if not ratios:
            raise ValueError(
                "ratios is empty, so this entry would add no run: list at least one, e.g. [0.2] "
                "(leave the key out for a model whose ratio is read, not set)"
            )
        for r in ratios:
            if r is not None and not 0.0 <= r <= 1.0:
                raise ValueError(
                    f"noise ratio {r} is outside [0, 1]: a ratio is a fraction (0.5 means 50%)"
                )
        return ratios


class MethodEntry(_Strict):
    """One method by registered name, with overrides of its published hyperparameters."""

    name: str
    hparams: dict[str, Any] = Field(default_factory=dict)
    protocol: str | None = None
    """A paper's protocol (`nlbench.methods.api.protocols`), resolved per dataset family under
    the method's `hparams`: every optimiser, schedule, batch, view, epoch and input setting of
    that paper, so a baseline inherits nothing from another protocol by omission."""


class ExecutorEntry(_Strict):
    """Where runs execute: `serial` (this process), `local` (a pool of worker processes on this
    machine) or `slurm` (one Slurm job array per sweep). Keys that do not apply to the chosen kind
    are ignored, so `--executor` can switch kinds without editing the suite.
    """

    kind: Literal["serial", "local", "slurm"] = "serial"
    # local: runs at once (default: GPUs x runs_per_device on CUDA, 2 on the CPU). Each run sets
    # torch's intra-op CPU threads to `engine.cpu_threads` (default 1), not a share of the cores,
    # in the process that runs it (the sweep's own under serial, a worker under local, the job
    # under slurm; `run.prepare_run`; part of the run: see EngineOptions). A streamed dataset
    # adds `engine.data_workers` decoding processes per run, one torch thread each.
    workers: int | None = Field(None, ge=1)
    runs_per_device: int = Field(1, ge=1)
    # slurm: resources of each run's job, and how many jobs of the array may run at once
    # (`cpus_per_run` reserves CPUs; the run's threads are still `engine.cpu_threads`).
    partition: str | None = None
    gpus_per_run: int = Field(0, ge=0)
    cpus_per_run: int = Field(1, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    timeout_min: int = Field(60, ge=1)
    array_parallelism: int = Field(32, ge=1)
    # slurm: USR2 this long before the time limit; then the run is requeued (at most max_requeues
    # times for time limits) and resumes from its last checkpoint.
    signal_delay_s: int = Field(120, ge=1)
    max_requeues: int = Field(3, ge=0)
    sbatch_extra: dict[str, Any] = Field(default_factory=dict)  # e.g. {account: x, qos: y}
    log_dir: str | None = None  # default: <results_dir>/<suite>/slurm (must be on a shared disk)


class SelectionEntry(_Strict):
    """Honest model selection: hold out `fraction` of the noisy training set, stratified by noisy
    label, as a noisy validation split the engine scores every epoch (the labels a practitioner
    has). `seed` fixes the split (None: each run's seed); `headline` is the rule the leaderboard
    leads with: the epoch with the best validation accuracy, or the last epoch.

    `split: dataset_val` selects on the dataset's own held-out validation set instead (Clothing1M's
    clean validation list, loaded with `val: true`): a practitioner has it too, so selecting on it
    is honest; `fraction` and `seed` do not apply and the training set stays whole."""

    split: Literal["noisy_val", "dataset_val"] = "noisy_val"
    fraction: float = Field(0.1, gt=0, lt=1)
    seed: Annotated[StrictInt, Field(ge=0)] | None = None
    headline: Literal["noisy_val", "last"] = "noisy_val"


class SearchEntry(_Strict):
    """Random hyperparameter search: each method's defaults are trial 0, then `trials` - 1
    configurations drawn from its `search_space` with `seed`; every trial is an ordinary run."""

    trials: int = Field(ge=1)
    seed: Annotated[StrictInt, Field(ge=0)] = 0


class Suite(_Strict):
    """A validated suite file."""

    name: str
    description: str = ""
    datasets: list[DatasetEntry]
    noise: list[NoiseEntry]
    methods: list[MethodEntry]
    seeds: list[Annotated[StrictInt, Field(ge=0)]] = Field(default_factory=lambda: [0])
    common: dict[str, Any] = Field(default_factory=dict)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    executor: ExecutorEntry = Field(default_factory=ExecutorEntry)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    tracking: TrackingOptions = Field(default_factory=TrackingOptions)
    paper: list[PaperTable] = Field(default_factory=list)
    """The paper's published tables; several where it reports several epoch rules (DivideMix's
    Best and Last rows). One mapping stands for a list of one."""
    reference: list[Reference] = Field(default_factory=list)
    """Runs of the official code under the suite's protocol (`nlbench.published.Reference`)."""
    selection: SelectionEntry | None = None
    search: SearchEntry | None = None
    baseline: str | None = None  # the method the report counts wins/ties/losses against (ce)
    results_dir: str = "results"
    reports_dir: str = "reports"

    @field_validator("paper", mode="before")
    @classmethod
    def _table_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("datasets", "methods", mode="before")
    @classmethod
    def _names_as_entries(cls, value: Any) -> Any:
        """Let `methods: [ce, ssr]` stand for `[{name: ce}, {name: ssr}]`."""
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("name")
    @classmethod
    def _folder_safe_name(cls, name: str) -> str:
        """The name is a folder under results/ and reports/: no separators, no `..`."""
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(
                f"'{name}' cannot name a results folder: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
        return name

    @field_validator("datasets", "noise", "methods", "seeds")
    @classmethod
    def _not_empty(cls, entries: list[Any], info: ValidationInfo) -> list[Any]:
        if not entries:
            raise ValueError(f"a suite needs at least one entry in {info.field_name}")
        return entries

    @field_validator("search")
    @classmethod
    def _search_selects_by_validation(
        cls, search: SearchEntry | None, info: ValidationInfo
    ) -> SearchEntry | None:
        if search is not None and info.data.get("selection") is None:
            raise ValueError(
                "a search picks configurations by noisy-validation accuracy: add "
                "`selection: {split: noisy_val, fraction: 0.1}`"
            )
        return search

    @field_validator("baseline")
    @classmethod
    def _baseline_is_a_method(cls, baseline: str | None, info: ValidationInfo) -> str | None:
        names = [entry.name for entry in info.data.get("methods") or []]
        if baseline is not None and names and baseline not in names:
            raise ValueError(
                f"baseline '{baseline}' is none of the suite's methods ({', '.join(names)})"
            )
        return baseline

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seed {repeated[0]} is listed twice; each seed is one run")
        return seeds


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _fields_at(model: type[BaseModel], parts: tuple[Any, ...]) -> list[str]:
    """The valid keys of the model that holds the key at `parts` (for did-you-mean hints)."""
    current: Any = model
    for p in parts[:-1]:
        if isinstance(p, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(p)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        current = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def explain(error: ValidationError, model: type[BaseModel], where: str) -> ConfigError:
    """Turn pydantic's report into one line naming the key path and the nearest valid key."""
    first = error.errors()[0]
    parts = tuple(first["loc"])
    path = _loc(parts)
    if first["type"] == "extra_forbidden":
        hint = did_you_mean(str(parts[-1]), _fields_at(model, parts))
        return ConfigError(f"{where}: unknown key '{path}'{hint}")
    if first["type"] == "missing":
        return ConfigError(f"{where}: missing key '{path}'")
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{where}: {path}: {message}")
