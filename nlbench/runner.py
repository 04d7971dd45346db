"""A sweep: prepare data and noise for every pending run, hand the runs to the suite's executor
(nlbench/executors.py), and read the one record each run writes.

Data and noise are prepared for all pending runs *before* any training, so a missing folder or a
noise model without a class map fails in seconds, not after hours of other runs. A run a worker
executes is `run_job`: plain data in, a record in the store out, whatever process it runs in.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nlbench.config import RunSpec, Suite, dataset_label
from nlbench.data.dataset import Dataset, check_listed_files
from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoisyLabels, apply_noise, noise_facts
from nlbench.data.splits import noisy_validation_split
from nlbench.devices import resolve_device
from nlbench.engine import Engine, EngineOptions, FitResult, RunFailed
from nlbench.engine.loop import checkpoint_bytes
from nlbench.errors import ConfigError, StorageError, write_failure
from nlbench.executors import SerialExecutor, make_executor
from nlbench.jobs import Executor, Outcome, RunJob
from nlbench.methods.api import get as get_method
from nlbench.records import EpochLog, Failure, FinalMetrics, NoiseInfo, Record, environment
from nlbench.store import Store, check_writable, read_record
from nlbench.suite_origin import SuiteOrigin, claim
from nlbench.sweep_lock import sweep_lock
from nlbench.tracking import RunTracker, TrackingOptions, last_epoch, log_path


@dataclass
class SweepSummary:
    """What a sweep did: counts, and the records it could not read (already moved aside).

    `failed` describes runs recorded as failed and runs whose job crashed without a record;
    `crashed` counts the latter, which stay pending and are retried by the next sweep. `kept`
    describes failed runs of earlier sweeps left as they are (counted in `skipped`): nothing
    they depend on changed since they failed.
    """

    total: int
    skipped: int = 0
    ran: int = 0
    crashed: int = 0
    failed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str, Path]] = field(default_factory=list)


class DataCache:
    """Loads each dataset once and draws each (dataset, noise) once per process and sweep."""

    def __init__(self) -> None:
        self._datasets: dict[str, Dataset] = {}
        self._noise: dict[str, NoisyLabels] = {}

    def clear(self) -> None:
        self._datasets.clear()
        self._noise.clear()

    def dataset(self, spec: RunSpec) -> Dataset:
        key = json.dumps(spec.dataset, sort_keys=True)
        if key not in self._datasets:
            entry = spec.dataset
            dataset = load_dataset(entry["name"], entry.get("root"), **entry["options"])
            check_listed_files(dataset)
            self._datasets[key] = dataset
        return self._datasets[key]

    def noisy(self, spec: RunSpec) -> NoisyLabels:
        key = json.dumps([spec.dataset, spec.noise], sort_keys=True)
        if key not in self._noise:
            nz = spec.noise
            self._noise[key] = apply_noise(
                nz["model"], self.dataset(spec), nz["ratio"], nz["seed"], **nz["options"]
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
) -> Record:
    """The run's record, ok (from the fit) or failed (with the epochs trained before it failed)."""
    epochs = [EpochLog.model_validate(e) for e in (fit.epochs if fit else failure.epochs)]
    return Record(
        run_id=spec.run_id,
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
    if spec.selection is not None and spec.selection["split"] == "dataset_val":
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
            noisy.labels, dataset.num_classes, chosen["fraction"], chosen["seed"]
        )
        if len(validation) == 0:
            raise ConfigError(
                f"{spec.describe()}: selection.fraction {chosen['fraction']} holds out no sample "
                f"of {len(noisy.labels)}; raise it"
            )
    return Engine(
        dataset,
        noisy,
        spec.seed,
        device,
        options,
        noise=noise_facts(
            spec.noise["model"], spec.noise["ratio"], dataset.num_classes, dataset.family
        ),  # fmt: skip
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
) -> Record:
    """Train one run, logging each epoch as it ends, and write its record (ok or failed).

    Nothing trains unless the results folder takes a file and has room for the record and the
    run's checkpoints. A record, checkpoint or log that cannot be written raises StorageError
    (the sweep stops); the log's last line says `ok` only once the record is on disk.
    """
    noisy = data.noisy(spec)
    engine = prepare_run(spec, data, device, options)
    checkpoint = store.checkpoint_path(spec.run_id) if options.checkpoint_every else None
    tracker = RunTracker(store.root, spec.run_id, spec.describe(), spec.suite,
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
                get_method(spec.method["name"]),
                spec.method["hparams"],
                describe=spec.describe(),
                checkpoint=checkpoint,
                position=position,
                on_epoch=tracker,
                before_training=room_to_store,
            )
            record = make_record(spec, noisy, device, time.perf_counter() - start, fit=fit,
                                 options=options)  # fmt: skip
        except RunFailed as failure:
            record = make_record(spec, noisy, device, time.perf_counter() - start,
                                 failure=failure, options=options)  # fmt: skip
        try:
            store.write(record)
        except OSError as exc:
            raise StorageError(
                f"could not write the record of {spec.describe()} to {store.path(spec.run_id)} "
                f"({write_failure(exc)})"
            ) from None
        ended = record.status
    except StorageError as exc:
        ended = f"stopped, nothing stored: {exc}"
        raise
    finally:
        tracker.close(ended)
    # An earlier attempt killed while saving left temporaries (Store.write's, Engine._save's).
    for stale in store.root.glob(f".{spec.run_id}.json.*.tmp"):
        stale.unlink(missing_ok=True)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
        checkpoint.with_suffix(".tmp").unlink(missing_ok=True)
    return record


_DATA = DataCache()


def run_job(
    spec: dict[str, Any],
    options: dict[str, Any],
    results_dir: str,
    device: str,
    tracking: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run as an executor ships it: top-level and plain data, so it pickles to a spawned
    worker or a Slurm job. Each process keeps its own data cache across the runs it gets.

    Every run starts through `prepare_run` (the engine's `cpu_threads`), so the same run id gives
    the same numbers in this process, a worker or a Slurm job. A run whose ok record already
    exists is not trained again: a Slurm job requeued just as it finished, or a sweep started
    twice, must not redo finished work.
    """
    engine_options = EngineOptions.model_validate(options)
    run = RunSpec.model_validate(spec)
    store = Store(Path(results_dir))
    try:
        record = read_record(store.path(run.run_id))
    except (ValueError, OSError):
        record = None
    if record is None or not record.ok:
        record = run_one(run, _DATA, store, resolve_device(device), engine_options, position=1,
                         tracking=TrackingOptions.model_validate(tracking or {}))  # fmt: skip
    return {"run_id": run.run_id, "status": record.status}


def pending_runs(
    specs: list[RunSpec],
    store: Store,
    retry_failed: bool,
    summary: SweepSummary,
    engine: EngineOptions | None = None,
) -> tuple[list[RunSpec], list[tuple[Path, str]]]:
    """Runs without a readable record, failed runs whose cause may be gone (or all failed runs,
    with --retry-failed), and the unreadable records."""
    records, problems = store.load()
    by_id = {r.run_id: r for r in records}
    todo: dict[str, RunSpec] = {}
    for spec in specs:
        record = by_id.get(spec.run_id)
        if spec.run_id in todo or (record is not None and record.ok):
            summary.skipped += 1  # a spec listed twice (e.g. seeds: [0, 0]) is one run
        elif record is not None and not retry_failed and not changed_since(record, spec, engine):
            summary.skipped += 1
            summary.kept.append(f"{spec.describe()}: {record.failure.reason}")
        else:
            todo[spec.run_id] = spec
    return list(todo.values()), problems


def changed_since(record: Record, spec: RunSpec, engine: EngineOptions | None) -> bool:
    """Whether anything a failed run depended on changed since: its spec as this sweep has it
    (a data root included; a report label is not), its data, or the engine options it ran with
    (unknown for records older than that field, which count as unchanged)."""

    def unlabelled(s: RunSpec) -> str:  # as JSON: a record read back has lists for tuples
        body = s.model_dump(mode="json")
        body["dataset"] = {k: v for k, v in body["dataset"].items() if k != "label"}
        return json.dumps(body, sort_keys=True)

    if unlabelled(record.spec) != unlabelled(spec):
        return True
    if record.data_id is not None and record.data_id != spec.data_id:
        return True
    return (
        engine is not None
        and record.engine_options is not None
        and record.engine_options != attempt_options(engine)
    )


def check_method(spec: RunSpec, data: DataCache) -> int:
    """Build the run's method once on the CPU, so that its configuration errors (a network too
    large for the images, k above N, a forget rate it cannot know) stop the sweep before any
    training, as bad data and noise do, instead of failing every run hours later. Returns about
    how large its checkpoints will be, so the sweep can check the results disk has room."""
    engine = engine_for(spec, data, torch.device("cpu"), EngineOptions(progress=False))
    method_cls = get_method(spec.method["name"])
    try:
        method = engine.build(method_cls, method_cls.HParams.model_validate(spec.method["hparams"]))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{spec.describe()}: {exc}") from None
    return checkpoint_bytes(method)


def run_sweep(
    suite: Suite,
    specs: list[RunSpec],
    store: Store,
    retry_failed: bool = False,
    device_name: str | None = None,
    reports: Path | None = None,
    origin: SuiteOrigin | None = None,
    wait: bool = False,
) -> SweepSummary:
    """Run what is not stored yet on the suite's executor. Nothing on disk changes before the
    executor is set up and every pending run's data and noise are ready; nothing trains unless
    the results folder (and `reports`, when given) can be written and has room for a run.

    One sweep at a time trains into a results folder: the second stops with one line naming the
    first (or, with `wait`, waits for it), then trains only what the first left. With `origin`,
    a folder holding another suite of the same name is refused.

    The first record, checkpoint or log that cannot be written stops the sweep: no further run
    is handed out, runs in flight are stopped, and StorageError says what failed and what is
    stored."""
    summary = SweepSummary(total=len(specs))
    todo, problems = pending_runs(specs, store, retry_failed, summary, suite.engine)
    device = device_name or suite.device
    # Nothing to run needs no executor: a finished Slurm sweep reports from any machine.
    executor = (
        make_executor(suite.executor, device, store.root / "slurm", f"nlbench-{suite.name}")
        if todo
        else None
    )
    _DATA.clear()
    try:
        checkpoints: dict[str, int] = {}
        warned: set[str] = set()
        for spec in todo:
            _warn_majority_flips(spec, _DATA.noisy(spec), warned)
            key = json.dumps(
                [spec.dataset, spec.noise["model"], spec.noise["ratio"], spec.method],
                sort_keys=True,
            )
            if key not in checkpoints:
                checkpoints[key] = check_method(spec, _DATA)
        if todo:
            suite.tracking.check_installed()
            check_writable(store.root, "results", "results_dir")
            if reports is not None:
                check_writable(reports, "reports", "reports_dir")
            largest = max(checkpoints.values()) if suite.engine.checkpoint_every else 0
            problem = store.storage_problem(largest)
            if problem is not None:
                raise ConfigError(
                    f"{problem}; nothing was trained: free space, or choose another folder "
                    "with --set results_dir=PATH"
                )
        if not isinstance(executor, SerialExecutor):
            _DATA.clear()  # workers load their own copy; a login node need not hold one too
        if executor is None:
            return summary
        with sweep_lock(store.root, wait):
            if origin is not None:
                claim(store.root, origin, suite.name)
            # Another sweep may have stored runs while this one prepared or waited.
            summary = SweepSummary(total=len(specs))
            todo, problems = pending_runs(specs, store, retry_failed, summary, suite.engine)
            for path, problem in problems:
                summary.problems.append((path, problem, store.quarantine(path)))
            try:
                _execute(suite, todo, store, executor, device, summary)
            except StorageError as exc:
                raise StorageError(_stopped(str(exc), specs, store)) from None
    finally:
        _DATA.clear()
    return summary


def _stopped(problem: str, specs: list[RunSpec], store: Store) -> str:
    """The one line of a sweep stopped by a lost write: what failed, what is stored, what next."""
    wanted = {spec.run_id for spec in specs}
    stored = len(wanted & {path.stem for path in store.root.glob("*.json")})
    return (
        f"{problem}; the sweep stopped at once: {stored} of {len(wanted)} runs are stored "
        f"(untouched), {len(wanted) - stored} are not: free space or make {store.root} "
        "writable (or choose another folder with --set results_dir=PATH), then rerun the same "
        "command"
    )


def _warn_majority_flips(spec: RunSpec, noisy: NoisyLabels, warned: set[str]) -> None:
    """One warning line per (dataset, noise, ratio) whose drawn labels give some class a wrong
    majority, before anything trains (the leaderboard repeats it as a footnote)."""
    flipped = noisy.majority_flipped
    where = f"{dataset_label(spec.dataset)} | {spec.describe().split(' | ')[2]}"
    if flipped and where not in warned:
        warned.add(where)
        print(
            f"warning: {where}: in {len(flipped)} of {len(noisy.transition_counts)} classes a "
            "wrong label outnumbers the true one (majority flip); no method can be expected to "
            "recover those classes",
            file=sys.stderr,
        )


def _execute(
    suite: Suite,
    todo: list[RunSpec],
    store: Store,
    executor: Executor,
    device: str,
    summary: SweepSummary,
) -> None:
    """Hand the pending runs to the executor and read each one's record as its job ends."""
    # Worker processes cannot share a terminal's bars: only the sweep's bar is drawn for them.
    quiet = {} if isinstance(executor, SerialExecutor) else {"progress": False}
    options = suite.engine.model_dump() | quiet
    root = str(store.root.resolve())
    tracking = suite.tracking.model_dump()
    jobs = [RunJob(spec.model_dump(), options, root, device, tracking) for spec in todo]
    describe = {spec.run_id: spec.describe() for spec in todo}
    running = set(describe)
    bar = tqdm(
        total=len(todo),
        desc=f"sweep {suite.name}",
        position=0,
        disable=not suite.engine.progress or not todo,
        dynamic_ncols=True,
    )
    try:
        for outcome in executor.run(
            run_job, jobs, lambda: _show_running(bar, store, running, describe)
        ):
            run_id = RunSpec.model_validate(outcome.job.spec).run_id
            running.discard(run_id)
            bar.update(1)
            if outcome.lost_write:
                raise StorageError(outcome.error)
            if outcome.error is None:
                try:
                    record = read_record(store.path(run_id))
                except (ValueError, OSError) as exc:
                    outcome = Outcome(
                        outcome.job, f"the job ended but its record is unreadable: {exc}"
                    )
            if outcome.error is not None:
                tqdm.write(
                    f"run {describe[run_id]} ({run_id}) ended without a record:\n{outcome.error}",
                    file=sys.stderr,
                )
                last = outcome.error.strip().splitlines()[-1]
                summary.failed.append(
                    f"{describe[run_id]}: crashed, no record (rerun the sweep to retry it): {last}"
                )
                summary.crashed += 1
                continue
            summary.ran += 1
            if record.failure is not None:
                summary.failed.append(f"{describe[run_id]}: {record.failure.reason}")
    finally:
        bar.close()


def _show_running(bar: tqdm, store: Store, running: set[str], describe: dict[str, str]) -> None:
    """Put the epoch each running run has reached (read from its log) on the sweep's bar."""
    if bar.disable:
        return  # no bar to show it on: read no logs
    shown = []
    for run_id in sorted(running):
        reached = last_epoch(log_path(store.root, run_id))
        if reached is not None:
            shown.append(f"{describe[run_id]}: epoch {reached}")
    if shown:
        more = f" (+{len(shown) - 3})" if len(shown) > 3 else ""
        bar.set_postfix_str("; ".join(shown[:3]) + more)
