"""A sweep: prepare data and noise for every pending run, hand the runs to the suite's executor
(nlbench/executors.py), and read the one record each run writes.

Data and noise are prepared for all pending runs *before* any training, so a missing folder or a
noise model without a class map fails in seconds, not after hours of other runs. A run a worker
executes is `nlbench.run.run_job`: a typed job in, a record in the store out, whatever process it
runs in.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from nlbench.data.dataset import check_listed_files
from nlbench.data.noise import NoisyLabels
from nlbench.engine import EngineOptions
from nlbench.errors import ConfigError, StorageError
from nlbench.executors import SerialExecutor, make_executor
from nlbench.jobs import Executor, Outcome, RunJob
from nlbench.records import Record
from nlbench.run import PROCESS_DATA, attempt_options, check_method, run_job
from nlbench.run_spec import RunSpec, dataset_label
from nlbench.store import Store, check_writable, read_record
from nlbench.suite import Suite
from nlbench.suite_origin import SuiteOrigin, claim
from nlbench.sweep_lock import sweep_lock
from nlbench.tracking import last_epoch, log_path


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
    PROCESS_DATA.clear()
    try:
        checkpoints: dict[str, int] = {}
        warned: set[str] = set()
        listed: set[str] = set()
        for spec in todo:
            data_key = spec.dataset.model_dump_json()
            if data_key not in listed:  # once a sweep, not again in every worker or job
                listed.add(data_key)
                check_listed_files(PROCESS_DATA.dataset(spec))
            _warn_majority_flips(spec, PROCESS_DATA.noisy(spec), warned)
            key = json.dumps(
                [spec.dataset.model_dump(mode="json"), spec.noise.model, spec.noise.ratio,
                 spec.method.model_dump(mode="json")],
                sort_keys=True,
            )  # fmt: skip
            if key not in checkpoints:
                checkpoints[key] = check_method(spec, PROCESS_DATA)
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
            PROCESS_DATA.clear()  # workers load their own copy; a login node need not hold one too
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
        PROCESS_DATA.clear()
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
    where = f"{dataset_label(spec.dataset)} | {spec.noise_label()}"
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
    options = suite.engine.model_copy(update=quiet)
    root = str(store.root.resolve())
    jobs = [RunJob(spec, spec.run_id, options, root, device, suite.tracking) for spec in todo]
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
            run_id = outcome.job.run_id
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
