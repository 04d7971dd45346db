"""Suites: YAML validated with pydantic, `--set` overrides, and expansion into run specs.

A suite names datasets x noise (model, ratios) x methods x seeds. Validation happens before any
data is touched, so `--dry-run` works without the data and a typo costs seconds, not a sweep.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from nlbench.data.datasets import DATASETS
from nlbench.data.files import content_id, folder_manifest
from nlbench.data.noise import NOISE_MODELS
from nlbench.engine import EngineOptions
from nlbench.errors import ConfigError, did_you_mean
from nlbench.published import PaperTable, Reference
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
        if model not in NOISE_MODELS:
            raise ValueError(
                f"unknown noise model '{model}'{did_you_mean(model, NOISE_MODELS)}; "
                f"known: {', '.join(NOISE_MODELS)}"
            )
        return model

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
    # under slurm; `runner.prepare_run`; part of the run: see EngineOptions). A streamed dataset
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


class RunSpec(BaseModel):
    """Everything that determines one run's result; its hash is the run id."""

    model_config = ConfigDict(frozen=True)

    suite: str
    dataset: dict[str, Any]
    noise: dict[str, Any]
    method: dict[str, Any]
    seed: int
    engine: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    """{split, fraction, seed, headline}: the held-out noisy validation split, or {split:
    dataset_val, headline}: the dataset's own validation set (absent: no selection split)."""

    @functools.cached_property
    def run_id(self) -> str:
        """Hash of the canonical spec. The dataset's `root` and `label` are left out and data and
        label files count by their content, so moving data keeps results.

        `engine` holds only the engine options that change the numbers (`amp: false`,
        `cpu_threads`), so a fp32 rerun of a bf16 sweep is new runs and the two never share a
        leaderboard cell; defaults leave it out of the hash.
        """
        body = self.model_dump(exclude_none=True)
        body["dataset"] = dataset_identity(self.dataset)
        body["noise"] = {**body["noise"], "options": _by_content(NOISE_MODELS, self.noise)}
        if "selection" in body:  # the headline rule is how to read the runs, not what they compute
            body["selection"] = {k: v for k, v in body["selection"].items() if k != "headline"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @functools.cached_property
    def data_id(self) -> str:
        """A digest of the data this run reads (loader, options, file contents)."""
        body = [dataset_identity(self.dataset), _by_content(NOISE_MODELS, self.noise)]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]

    def describe(self) -> str:
        ratio, options = self.noise["ratio"], self.noise["options"]
        files = _file_options(NOISE_MODELS, self.noise["model"])
        shown = (
            f"{ratio:g}"
            if ratio is not None
            else ",".join(f"{k}={v}" for k, v in options.items() if k not in files)
        )
        noise = f"{self.noise['model']} {shown}".strip()
        return f"{self.method['name']} | {dataset_label(self.dataset)} | {noise} | seed {self.seed}"


def _file_options(registry: dict[str, Any], name: str) -> tuple[str, ...]:
    entry = registry.get(name)
    return entry.files if entry is not None else ()


def _by_content(registry: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's options with each data or label file replaced by its content id, so a moved
    file keeps its runs and a changed one gets new runs (a missing file keeps its path)."""
    options = dict(entry.get("options") or {})
    for key in _file_options(registry, entry.get("name") or entry.get("model")):
        if isinstance(options.get(key), str):
            options[key] = content_id(options[key]) or options[key]
    return options


def dataset_identity(dataset: dict[str, Any]) -> dict[str, Any]:
    """What makes a dataset entry's data: its loader and options, files by content, a folder of
    images by its listing (`manifest`); not where the data lives (`root`) or what reports call
    it (`label`)."""
    kept = {k: v for k, v in dataset.items() if k not in ("root", "label") and v is not None}
    identity = {**kept, "options": _by_content(DATASETS, dataset)}
    info = DATASETS.get(dataset["name"])
    if info is not None and info.folder and dataset.get("root"):
        manifest = folder_manifest(dataset["root"])
        if manifest is not None:
            identity["manifest"] = manifest
    return identity


def dataset_label(dataset: dict[str, Any]) -> str:
    """How reports and progress lines name a dataset: its `label`, else a data file's stem, else
    the loader's name."""
    if dataset.get("label"):
        return dataset["label"]
    for key in _file_options(DATASETS, dataset["name"]):
        value = (dataset.get("options") or {}).get(key)
        if isinstance(value, str):
            return Path(value).stem
    return dataset["name"]


def label_options(dataset: dict[str, Any]) -> dict[str, Any]:
    """A dataset's options other than its data files (the label names those)."""
    files = _file_options(DATASETS, dataset["name"])
    return {k: v for k, v in (dataset.get("options") or {}).items() if k not in files}


def noise_label_options(noise: dict[str, Any]) -> dict[str, Any]:
    """A noise entry's options other than its label files (a path says nothing in a table)."""
    files = _file_options(NOISE_MODELS, noise["model"])
    return {k: v for k, v in (noise.get("options") or {}).items() if k not in files}


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


def _set_path(tree: Any, path: list[str], value: Any, parent: str = "") -> None:
    """Apply one `--set a.b.c=v`. Entries of `datasets`, `noise` and `methods` are addressed by
    index, by name (a noise entry by its model), or all at once by naming a field instead."""
    key, rest = path[0], path[1:]
    if isinstance(tree, list):
        if key.isdigit():
            targets = [tree[int(key)]] if int(key) < len(tree) else []
            if not targets:
                raise ConfigError(
                    f"--set: {parent} has {len(tree)} entries, so there is no {parent}.{key}"
                )
        else:
            names = [t.get("name", t.get("model")) for t in tree if isinstance(t, dict)]
            targets = [
                t for t in tree if isinstance(t, dict) and key in (t.get("name"), t.get("model"))
            ]
            if not targets:
                fields = _ENTRY_MODELS[parent].model_fields if parent in _ENTRY_MODELS else {}
                if key not in fields:
                    raise ConfigError(
                        f"--set: no entry named '{key}' in {parent}{did_you_mean(key, names)}; "
                        f"its entries: {', '.join(map(str, names)) or 'none'}"
                    )
                targets, rest = tree, path
        for t in targets:
            if not rest:
                raise ConfigError(f"--set: give a key below '{key}'")
            _set_path(t, rest, value, key)
        return
    if not isinstance(tree, dict):
        raise ConfigError(f"--set: '{key}' is below a value, not a section")
    if rest:
        child = tree.get(key)
        if child is None:
            child = tree[key] = {}
        if isinstance(child, list):
            child[:] = [{"name": c} if isinstance(c, str) else c for c in child]
        _set_path(child, rest, value, key)
    else:
        tree[key] = value


_ENTRY_MODELS: dict[str, type[BaseModel]] = {
    "datasets": DatasetEntry,
    "noise": NoiseEntry,
    "methods": MethodEntry,
}
_ALIASES = {"dataset": "datasets", "method": "methods"}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key.path=value` pairs, values parsed as YAML (so 5, 0.1, [0,1], true work)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected key=value, e.g. --set seeds=[0,1]")
        key, text = item.split("=", 1)
        path = key.strip().split(".")
        path[0] = _ALIASES.get(path[0], path[0])
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set '{item}': the value is not valid YAML ({exc})") from None
        _set_path(raw, path, value)
    return raw


def load_suite(path: str | Path, overrides: list[str] | None = None) -> Suite:
    """Read, override and validate a suite file; every failure is one ConfigError line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"suite file '{path}' not found (suites live in benchmarks/, e.g. "
            "benchmarks/quick.yaml)"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a suite is a mapping of keys (name, datasets, noise, methods, ...)"
        )
    raw.setdefault("name", path.stem)
    return suite_from_dict(raw, str(path), overrides)


def suite_from_dict(raw: dict[str, Any], where: str, overrides: list[str] | None = None) -> Suite:
    """Validate a suite given as data (e.g. built from an official command line)."""
    apply_overrides(raw, overrides or [])
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise explain(exc, Suite, where) from None


def _resolve(
    suite: Suite, index: int, dataset: str, overrides: list[dict[str, Any]]
) -> dict[str, Any]:
    """A method's hparams: defaults < its protocol on this dataset < common < its entry < dataset
    entry < noise entry."""
    from nlbench.methods.api import get as get_method
    from nlbench.methods.api.protocols import protocol

    entry = suite.methods[index]
    cls = get_method(entry.name)
    fields = set(cls.HParams.model_fields)
    merged = {}
    if entry.protocol is not None:
        try:
            merged = protocol(entry.protocol, dataset).hparams_for(fields)
        except ConfigError as exc:
            raise ConfigError(f"methods[{index}] ({entry.name}): {exc}") from None
    merged |= {k: v for k, v in suite.common.items() if k in fields}
    for layer in (entry.hparams, *overrides):
        merged.update(layer)
    try:
        return cls.HParams.model_validate(merged).model_dump()
    except ValidationError as exc:
        raise explain(exc, cls.HParams, f"methods[{index}] ({entry.name}) hparams") from None


def _check_references(suite: Suite) -> None:
    from nlbench.methods.api import get as get_method

    names = {m.name for m in suite.methods}
    for where, entries in (("datasets", suite.datasets), ("noise", suite.noise)):
        for i, entry in enumerate(entries):
            for name in entry.hparams:
                if name not in names:
                    raise ConfigError(
                        f"{where}[{i}].hparams: '{name}' is not a method of this "
                        f"suite{did_you_mean(name, names)}"
                    )
    unused = [
        k
        for k in suite.common
        if not any(k in get_method(m.name).HParams.model_fields for m in suite.methods)
    ]
    if unused:
        raise ConfigError(
            f"common: key '{unused[0]}' is a hyperparameter of none of the suite's methods"
        )


def expand(suite: Suite) -> list[RunSpec]:
    """datasets x noise x ratios x methods x seeds, with each method's hparams fully resolved.

    Two method entries that resolve to the same recipe would be one run listed twice, and two
    datasets under one label would share leaderboard rows: both are refused with one line.
    """
    _check_references(suite)
    _check_labels(suite)
    engine = numeric_engine_options(suite.engine)
    specs = []
    seen: dict[str, int] = {}
    for ds in suite.datasets:
        for nz in suite.noise:
            for index, method in enumerate(suite.methods):
                layers = [ds.hparams.get(method.name, {}), nz.hparams.get(method.name, {})]
                hparams = _resolve(suite, index, ds.name, layers)
                for tags, recipe in _trials(suite, index, hparams):
                    for ratio in nz.ratios:
                        for seed in suite.seeds:
                            spec = RunSpec(
                                suite=suite.name,
                                dataset=ds.model_dump(exclude={"hparams"}, exclude_none=True),
                                noise={
                                    "model": nz.model,
                                    "ratio": ratio,
                                    "seed": seed if nz.seed is None else nz.seed,
                                    "options": nz.options,
                                },
                                method={"name": method.name, "hparams": recipe} | (tags or {}),
                                seed=seed,
                                engine=engine,
                                selection=_selection(suite, seed),
                            )
                            _add(spec, index, method.name, seen, specs)
    return specs


def _selection(suite: Suite, seed: int) -> dict[str, Any] | None:
    """The run's validation split: the suite's, with each run's own seed unless one is fixed."""
    if suite.selection is None:
        return None
    chosen = suite.selection.model_dump()
    if chosen["split"] == "dataset_val":
        return {"split": "dataset_val", "headline": chosen["headline"]}
    chosen["seed"] = seed if chosen["seed"] is None else chosen["seed"]
    return chosen


DRAW_ATTEMPTS = 50
"""Draws tried per trial before a search space counts as exhausted."""


def _trials(suite: Suite, index: int, hparams: dict[str, Any]) -> list[tuple[dict | None, dict]]:
    """(search tags, hparams) of one method entry: its recipe alone without a search; with one,
    the recipe as trial 0 and up to `trials - 1` further *distinct* configurations drawn from the
    method's search space (fewer when a small space runs out; none without a space). The tags
    name the trial and the entry's default recipe, so the report groups an entry's trials."""
    from nlbench.methods.api import get as get_method
    from nlbench.methods.api.search import draw_configuration

    if suite.search is None:
        return [(None, hparams)]
    name = suite.methods[index].name
    cls = get_method(name)
    space = cls.HParams.search_space
    recipe = hashlib.sha256(json.dumps(hparams, sort_keys=True).encode()).hexdigest()[:8]
    seen = {json.dumps(hparams, sort_keys=True)}
    trials = [({"trial": 0, "recipe": recipe}, hparams)]
    for trial in range(1, suite.search.trials if space else 1):
        for attempt in range(DRAW_ATTEMPTS):
            drawn = draw_configuration(space, suite.search.seed, f"{name}:{recipe}", trial, attempt)
            try:
                config = cls.HParams.model_validate({**hparams, **drawn}).model_dump()
            except ValidationError as exc:
                where = f"methods[{index}] ({name}) search trial {trial}"
                raise explain(exc, cls.HParams, where) from None
            if json.dumps(config, sort_keys=True) not in seen:
                seen.add(json.dumps(config, sort_keys=True))
                trials.append(({"trial": trial, "recipe": recipe}, config))
                break
        else:
            break  # the space holds no configuration not run yet
    return trials


def _add(spec: RunSpec, index: int, name: str, seen: dict[str, int], specs: list) -> None:
    """Append `spec`, refusing a second method entry that resolves to the same runs."""
    first = seen.setdefault(spec.run_id, index)
    if first != index:
        raise ConfigError(
            f"methods[{index}] ({name}) resolves to the same recipe as methods[{first}]: the same "
            "runs twice; remove one, or give it other hparams"
        )
    specs.append(spec)


def numeric_engine_options(options: EngineOptions) -> dict[str, Any] | None:
    """The engine options that change a run's numbers, where they differ from the defaults.

    `amp: false` (fp32 where the default is bf16 autocast on CUDA) and `cpu_threads` (the order of
    a CPU's floating-point reductions) enter the run id, so runs that would compute different
    numbers never share an id or a leaderboard cell; defaults leave the id as it was.
    """
    default = EngineOptions()
    changed = {
        key: getattr(options, key)
        for key in ("amp", "cpu_threads")
        if getattr(options, key) != getattr(default, key)
    }
    return changed or None


def _check_labels(suite: Suite) -> None:
    """Two different datasets must not share a report label (their runs would share rows)."""
    owners: dict[str, tuple[int, str]] = {}
    for i, ds in enumerate(suite.datasets):
        entry = ds.model_dump(exclude={"hparams"}, exclude_none=True)
        identity = json.dumps(dataset_identity(entry), sort_keys=True)
        label = dataset_label(entry)
        first, known = owners.setdefault(label, (i, identity))
        if known != identity:
            raise ConfigError(
                f"datasets[{i}] and datasets[{first}] are different data but both report as "
                f"'{label}'; give one a `label:`"
            )


def expected_recipes(specs: list[RunSpec]) -> dict[tuple[str, str, float | None, str], str]:
    """(dataset label, noise model, ratio, method) -> the suite's own resolved hparams (JSON), to
    tell runs of the paper recipe from runs whose recipe was overridden."""
    return {
        (dataset_label(s.dataset), s.noise["model"], s.noise["ratio"], s.method["name"]):
            json.dumps(s.method["hparams"], sort_keys=True)
        for s in specs
    }  # fmt: skip
