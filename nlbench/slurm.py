"""The `slurm` executor: a sweep's pending runs as one Slurm job array, submitted through submitit.

Each run is one array task with the suite's resources (partition, GPUs, CPUs, memory, time limit),
and `array_parallelism` caps how many run at once. Jobs write their records into the results
folder, which must be on a file system the compute nodes share; the sweep process only watches
records appear and jobs leave the queue.

Pre-emption and time limits: Slurm sends USR2 (`signal_delay_s` before the limit, or when the job
is pre-empted); submitit then calls the job's `checkpoint()`, which requeues the same run. The
requeued job resumes from the run's last periodic checkpoint (`engine.checkpoint_every`): the
epochs trained since that checkpoint are trained again, and a run without checkpoints starts over.

The sweep process may stop (Ctrl-C, a closed session) while its jobs run on: their ids are kept in
`jobs.json` beside the logs, so a rerun of the sweep waits for those still queued or running
instead of submitting them twice.
"""

from __future__ import annotations

import getpass
import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from nlbench.errors import ConfigError
from nlbench.jobs import JobFn, Outcome, RunJob, Tick
from nlbench.store import Store, write_atomic
from nlbench.suite import ExecutorEntry

# PREEMPTED is missing on purpose: a pre-empted job is usually requeued under the same id.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "REVOKED",
        "TIMEOUT",
    }
)


class RequeueOnPreemption(submitit.helpers.Checkpointable):
    """A run as a Slurm job that Slurm may stop early.

    Checkpointable's default `checkpoint()` requeues this callable with the same arguments; nothing
    needs saving at the signal, because the engine's periodic checkpoint on disk is what the
    requeued run resumes from.
    """

    def __init__(self, fn: JobFn) -> None:
        self.fn = fn

    def __call__(self, *job: Any) -> Any:
        return self.fn(*job)


def queue_states() -> dict[str, str] | None:
    """State of each job of this user that Slurm still knows ("123_4" -> "RUNNING"), or None when
    squeue does not answer (a busy controller must not end the sweep: ask again later)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


def lost_write_in(log: Path) -> str | None:
    """The one line of a `StorageError` a job's log ends with (it could not store its results),
    or None: any other end, or a log that could not be read (a full disk may have kept it
    empty)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()[-50:]
    except OSError:
        return None
    marker = "nlbench.errors.StorageError: "
    found = [line.split(marker, 1)[1] for line in lines if marker in line]
    return found[-1] if found else None


def cancel(job_ids: list[str]) -> None:
    """`scancel` these jobs (queued or running); they leave no record, so a rerun redoes them."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60, check=False)


def _queue_states_or_stop(tries: int = 5) -> dict[str, str]:
    """The queue before submitting: without it, jobs still running from an earlier sweep would
    look finished and their runs would be submitted twice, so a silent squeue stops the sweep."""
    for attempt in range(tries):
        states = queue_states()
        if states is not None:
            return states
        time.sleep(2**attempt)
    raise ConfigError(
        "squeue did not answer; nothing was submitted (check the Slurm controller "
        "with `squeue`, then rerun the same command)"
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    """Identity of a record file: a rewrite (atomic, so a new inode) changes it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@dataclass
class _Pending:
    """A submitted run: its job, and the record file it will (re)write."""

    job: RunJob
    job_id: str
    record: Path
    stamp: tuple[int, int] | None
    ended: int = 0

    def written(self) -> bool:
        return _stamp(self.record) not in (None, self.stamp)


class SlurmExecutor:
    """Submits one job array per sweep and yields each run's outcome as its record appears."""

    def __init__(
        self, entry: ExecutorEntry, folder: Path, job_name: str, max_poll_s: float = 30.0
    ) -> None:
        if shutil.which("sbatch") is None:
            raise ConfigError(
                "executor 'slurm' needs Slurm's sbatch on PATH: run the sweep on a "
                "login node of the cluster (or use --executor local)"
            )
        self.entry, self.folder, self.job_name = entry, folder.resolve(), job_name
        self.max_poll_s = max_poll_s

    @property
    def ledger_path(self) -> Path:
        return self.folder / "jobs.json"

    def _ledger(self) -> dict[str, str]:
        try:
            return json.loads(self.ledger_path.read_text())
        except (OSError, ValueError):
            return {}

    def _submitit(self) -> submitit.SlurmExecutor:
        e = self.entry
        params: dict[str, Any] = {
            "job_name": self.job_name,
            "time": e.timeout_min,
            "cpus_per_task": e.cpus_per_run,
            "array_parallelism": e.array_parallelism,
            "signal_delay_s": e.signal_delay_s,
            # No path set-up: submitit starts each job with this process's interpreter
            # (`sys.executable`), so a job imports the nlbench installed where the sweep's own
            # is, editable or not.
            "additional_parameters": dict(e.sbatch_extra),
        }
        optional = {
            "partition": e.partition,
            "gpus_per_node": e.gpus_per_run or None,
            "mem": f"{math.ceil(e.mem_gb * 1024)}M" if e.mem_gb else None,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=e.max_requeues)
        executor.update_parameters(**params)
        return executor

    def _submit(self, fn: JobFn, jobs: list[RunJob]) -> list[str]:
        try:
            submitted = self._submitit().map_array(RequeueOnPreemption(fn), *zip(*jobs))
        except submitit.core.utils.FailedJobError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            reason = lines[-1] if lines else str(exc)
            raise ConfigError(f"Slurm refused the job array: {reason}") from None
        return [job.job_id for job in submitted]

    def run(self, fn: JobFn, jobs: Sequence[RunJob], tick: Tick | None = None) -> Iterator[Outcome]:
        if not jobs:
            return
        ledger, states = self._ledger(), _queue_states_or_stop()
        waiting: list[_Pending] = []
        new: dict[str, _Pending] = {}
        for job in jobs:
            run_id = job.run_id
            record = Store(Path(job.results_dir)).path(run_id)
            known = ledger.get(run_id)
            if known and states.get(known, "COMPLETED") not in FINAL_STATES:  # an earlier sweep's
                waiting.append(_Pending(job, known, record, _stamp(record)))
            else:
                new[run_id] = _Pending(job, "", record, _stamp(record))  # stamped before submitting
        if new:
            job_ids = self._submit(fn, [pending.job for pending in new.values()])
            for (run_id, pending), job_id in zip(new.items(), job_ids):
                pending.job_id = ledger[run_id] = job_id
                waiting.append(pending)
            write_atomic(self.ledger_path, json.dumps(ledger, indent=1, sort_keys=True))
        yield from self._watch(waiting, tick)

    def _watch(self, waiting: list[_Pending], tick: Tick | None = None) -> Iterator[Outcome]:
        """Look for new records every second (a stat each), and ask the queue (one squeue call)
        less and less often, up to every `max_poll_s`, to spare the controller."""
        delay, next_ask = 1.0, time.monotonic() + 1.0
        while waiting:
            time.sleep(1.0)
            if tick is not None:
                tick()
            for pending in [p for p in waiting if p.written()]:
                waiting.remove(pending)
                yield Outcome(pending.job)
            if not waiting or time.monotonic() < next_ask:
                continue
            delay = min(delay * 1.5, self.max_poll_s)
            next_ask = time.monotonic() + delay
            states = queue_states()
            if states is None:
                continue
            for pending in list(waiting):
                state = states.get(pending.job_id)
                # Slurm requeues some failed jobs (NODE_FAIL) under the same id: only an end seen
                # on two polls in a row counts.
                pending.ended = pending.ended + 1 if state is None or state in FINAL_STATES else 0
                if pending.ended < 2:
                    continue
                waiting.remove(pending)
                if pending.written():  # the record landed between the two looks
                    yield Outcome(pending.job)
                    continue
                log = self.folder / f"{pending.job_id}_0_log.err"
                lost = lost_write_in(log)
                if lost is not None:
                    # Every run still queued or running would lose its results the same way.
                    cancel([p.job_id for p in waiting])
                    yield Outcome(pending.job, f"Slurm job {pending.job_id}: {lost}", True)
                    return
                yield Outcome(
                    pending.job,
                    f"Slurm job {pending.job_id} ended ({state or 'left the queue'}) without "
                    f"writing a record; its log: {log}",
                )
