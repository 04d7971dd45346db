"""One run, wherever it executes: its data and noise (loaded once per process), its engine
started as every run's is (`prepare_run`), its method built and checked, its record made and
written (`run_one`), and `run_job`, the form an executor ships to a worker or a Slurm job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nlbench.data.dataset import Dataset
from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoisyLabels, apply_noise, noise_facts
from nlbench.data.splits import noisy_validation_split
from nlbench.devices import resolve_device
from nlbench.engine import Engine, EngineOptions, FitResult, RunFailed
from nlbench.engine.checkpoint import checkpoint_bytes
from nlbench.errors import ConfigError, StorageError, write_failure
from nlbench.methods.api import MethodHParams
from nlbench.methods.api import get as get_method
from nlbench.records import Failure, FinalMetrics, NoiseInfo, Record, environment
from nlbench.run_spec import RunSpec
from nlbench.store import Store, read_record
from nlbench.tracking import RunTracker, TrackingOptions


class DataCache:
    """Loads each dataset once and draws each (dataset, noise) once per process and sweep."""

    def __init__(self) -> None:
        self._datasets: dict[str, Dataset] = {}
        self._noise: dict[str, NoisyLabels] = {}

    def clear(self) -> None:
        self._datasets.clear()
        self._noise.clear()

    def dataset(self, spec: RunSpec) -> Dataset:
        key = spec.dataset.model_dump_json()
        if key not in self._datasets:
            entry = spec.dataset
            self._datasets[key] = load_dataset(entry.name, entry.root, **entry.options)
        return self._datasets[key]

    def noisy(self, spec: RunSpec) -> NoisyLabels:
        key = spec.dataset.model_dump_json() + spec.noise.model_dump_json()
        if key not in self._noise:
            nz = spec.noise
            self._noise[key] = apply_noise(
                nz.model, self.dataset(spec), nz.ratio, nz.seed, **nz.options
            )
        return self._noise[key]


def attempt_options(options: EngineOptions) -> dict[str, Any]:
    """The engine options a run's record keeps: all but `progress`, which changes nothing."""
    return options.model_dump(mode="json", exclude={"progress"})


def make_record(
    spec: RunSpec,
    noisy: NoisyLabels,
    device: torch.device,
    wall: float,
    fit: FitResult | None = None,
    failure: RunFailed | None = None,
    options: EngineOptions | None = None,
    run_id: str | None = None,
) -> Record:
    """The run's record, ok (from the fit) or failed (with the epochs trained before it failed);
    `run_id` as the job carried it (default: the spec's)."""
    epochs = fit.epochs if fit else failure.epochs
    return Record(
        run_id=run_id or spec.run_id,
        suite=spec.suite,
        status="failed" if failure else "ok",
        failure=Failure(reason=failure.reason, epoch=failure.epoch) if failure else None,
        spec=spec,
        env=environment(device),
        noise=NoiseInfo(
            model=noisy.model,
            nominal_ratio=noisy.nominal_ratio,
            realised_rate=(
                None if noisy.realised_rate is None else round(float(noisy.realised_rate), 6)
            ),
            transition_counts=noisy.transition_counts.tolist(),
        ),
        epochs=epochs,
        final=FinalMetrics.of(epochs),
        scored_network=fit.scored_network if fit else None,
        switches=fit.switches if fit else {},
        estimates=fit.estimates if fit else {},
        resumed_from_epoch=fit.resumed_from if fit else None,
        wall_seconds=round(wall, 3),
        images_per_second=round(fit.images_seen / max(fit.train_seconds, 1e-9), 1) if fit else None,
        data_id=spec.data_id,
        engine_options=None if options is None else attempt_options(options),
    )


def engine_for(
    spec: RunSpec, data: DataCache, device: torch.device, options: EngineOptions
) -> Engine:
    """The engine of one run: its data, its noise, its seed, the noise-rate hint, and its noisy
    validation split when the suite selects models on one."""
    dataset, noisy = data.dataset(spec), data.noisy(spec)
    validation = None
    if spec.selection is not None and spec.selection.split == "dataset_val":
        validation = dataset.val
        if validation is None:
            raise ConfigError(
                f"{spec.describe()}: selection.split dataset_val needs the dataset's own "
                f"validation set, and '{dataset.name}' has none loaded (clothing1m: set "
                "dataset.options.val=true); or use split noisy_val"
            )
    elif spec.selection is not None:
        chosen = spec.selection
        validation = noisy_validation_split(
            noisy.labels, dataset.num_classes, chosen.fraction, chosen.seed
        )
        if len(validation) == 0:
            raise ConfigError(
                f"{spec.describe()}: selection.fraction {chosen.fraction} holds out no sample "
                f"of {len(noisy.labels)}; raise it"
            )
    return Engine(
        dataset,
        noisy,
        spec.seed,
        device,
        options,
        noise=noise_facts(spec.noise.model, spec.noise.ratio, dataset.num_classes, dataset.family),
        validation=validation,
    )


def prepare_run(
    spec: RunSpec, data: DataCache, device: torch.device, options: EngineOptions
) -> Engine:
    """The engine of one run, in a process set up as every run's is: torch's CPU threads set to
    `engine.cpu_threads` (part of the run: they order a CPU's floating-point sums). Sweeps
    (`run_one`, in any executor) and `perf` both start runs here, so a timing is of the run a
    sweep would train."""
    torch.set_num_threads(options.cpu_threads)
    return engine_for(spec, data, device, options)


def run_one(
    spec: RunSpec,
    data: DataCache,
    store: Store,
    device: torch.device,
    options: EngineOptions,
    position: int = 0,
    tracking: TrackingOptions | None = None,
    run_id: str | None = None,
) -> Record:
    """Train one run, logging each epoch as it ends, and write its record (ok or failed) under
    `run_id` (as the job carried it; default: the spec's).

    Nothing trains unless the results folder takes a file and has room for the record and the
    run's checkpoints. A record, checkpoint or log that cannot be written raises StorageError
    (the sweep stops); the log's last line says `ok` only once the record is on disk.
    """
    run_id = run_id or spec.run_id
    noisy = data.noisy(spec)
    engine = prepare_run(spec, data, device, options)
    checkpoint = store.checkpoint_path(run_id) if options.checkpoint_every else None
    tracker = RunTracker(store.root, run_id, spec.describe(), spec.suite,
                         spec.model_dump(), tracking or TrackingOptions())  # fmt: skip

    def room_to_store(method: object) -> None:
        problem = store.storage_problem(checkpoint_bytes(method) if checkpoint else 0)
        if problem is not None:
            raise StorageError(f"{problem}; {spec.describe()} was not started")

    start = time.perf_counter()
    ended = "stopped"
    try:
        try:
            fit = engine.fit(
                get_method(spec.method.name),
                method_hparams(spec),
                describe=spec.describe(),
                checkpoint=checkpoint,
                position=position,
                on_epoch=tracker,
                before_training=room_to_store,
            )
            record = make_record(spec, noisy, device, time.perf_counter() - start, fit=fit,
                                 options=options, run_id=run_id)  # fmt: skip
        except RunFailed as failure:
            record = make_record(spec, noisy, device, time.perf_counter() - start,
                                 failure=failure, options=options, run_id=run_id)  # fmt: skip
        try:
            store.write(record)
        except OSError as exc:
            raise StorageError(
                f"could not write the record of {spec.describe()} to {store.path(run_id)} "
                f"({write_failure(exc)})"
            ) from None
        ended = record.status
    except StorageError as exc:
        ended = f"stopped, nothing stored: {exc}"
        raise
    finally:
        tracker.close(ended)
    # An earlier attempt killed while saving left temporaries (Store.write's, save_checkpoint's).
    for stale in store.root.glob(f".{run_id}.json.*.tmp"):
        stale.unlink(missing_ok=True)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
        checkpoint.with_suffix(".tmp").unlink(missing_ok=True)
    return record


PROCESS_DATA = DataCache()
"""This process's datasets and noise: a worker keeps them across the runs it is given."""


def run_job(
    spec: RunSpec,
    run_id: str,
    options: EngineOptions,
    results_dir: str,
    device: str,
    tracking: TrackingOptions | None = None,
) -> str:
    """One run as an executor ships it: top-level and plain data, so it pickles to a spawned
    worker or a Slurm job. Each process keeps its own data cache across the runs it gets.

    Every run starts through `prepare_run` (the engine's `cpu_threads`), so the same run id gives
    the same numbers in this process, a worker or a Slurm job. A run whose ok record already
    exists is not trained again: a Slurm job requeued just as it finished, or a sweep started
    twice, must not redo finished work.
    """
    store = Store(Path(results_dir))
    try:
        record = read_record(store.path(run_id))
    except (ValueError, OSError):
        record = None
    if record is None or not record.ok:
        record = run_one(spec, PROCESS_DATA, store, resolve_device(device), options, position=1,
                         tracking=tracking, run_id=run_id)  # fmt: skip
    return record.status


def method_hparams(spec: RunSpec) -> MethodHParams:
    """The run's method hyperparameters as its `HParams`: the spec holds them as resolved and
    validated by the expansion; this is that model again on the other side of a job boundary."""
    return get_method(spec.method.name).HParams.model_validate(spec.method.hparams)


def check_method(spec: RunSpec, data: DataCache) -> int:
    """Build the run's method once on the CPU, so that its configuration errors (a network too
    large for the images, k above N, a forget rate it cannot know) stop the sweep before any
    training, as bad data and noise do, instead of failing every run hours later. Returns about
    how large its checkpoints will be, so the sweep can check the results disk has room."""
    engine = engine_for(spec, data, torch.device("cpu"), EngineOptions(progress=False))
    try:
        method = engine.build(get_method(spec.method.name), method_hparams(spec))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{spec.describe()}: {exc}") from None
    return checkpoint_bytes(method)
