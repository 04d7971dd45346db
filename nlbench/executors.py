"""Executors: where a sweep's pending runs execute, behind one interface.

`serial` runs them one after another in this process; `local` in a pool of worker processes on this
machine, each pinned to one device slot; `slurm` (nlbench/slurm.py) as one Slurm job array. All
take the same job function and plain-data jobs, and yield one `Outcome` per job as it ends. The
outcome carries no result: the record the job wrote is the result, because the store is the only
state a sweep shares, and a job on another machine can hand back nothing else reliably. `error`
says why a job ended without a record (a crash, a dead worker, a cancelled Slurm job); such a run
stays pending, so rerunning the sweep retries it.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from nlbench.devices import resolve_device
from nlbench.errors import ConfigError
from nlbench.jobs import Executor, JobFn, Outcome, RunJob, Tick, outcome_of
from nlbench.suite import ExecutorEntry

TICK_S = 1.0


class SerialExecutor:
    """One run after another in this process: simplest to debug, and it reuses the sweep's data."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def run(self, fn: JobFn, jobs: Sequence[RunJob], tick: Tick | None = None) -> Iterator[Outcome]:
        """`tick` is unused: the run in this process draws its own epoch bar."""
        for job in jobs:
            try:
                fn(*job._replace(device=str(self.device)))
            except Exception as exc:  # noqa: BLE001 - one crashed run must not end the sweep
                yield outcome_of(job, exc)
            else:
                yield Outcome(job)


def device_slots(device: torch.device, entry: ExecutorEntry) -> list[str]:
    """One device per worker: on CUDA `runs_per_device` slots per GPU, dealt round-robin so a
    smaller pool still spreads over every GPU; on the CPU `workers` (default 2) slots."""
    if device.type == "cuda":
        count = torch.cuda.device_count()
        gpus = [device.index] if device.index is not None else list(range(count))
        slots = [f"cuda:{gpu}" for _ in range(entry.runs_per_device) for gpu in gpus]
        return slots[: entry.workers or len(slots)]
    return [device.type] * (entry.workers or 2)


def _watch_parent(parent: int) -> None:
    """A worker whose sweep process died exits too, instead of waiting forever for more runs.

    Its unfinished run has no record, so rerunning the sweep redoes it (from its checkpoint).
    """
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _exit_on_term(signum: int, frame: Any) -> None:
    sys.exit(1)  # unwinds, so a half-written record's temporary file is removed


def _worker(slot: str, parent: int, fn: JobFn, conn: Connection) -> None:
    """Run the jobs the sweep process sends over `conn` on one device slot, until a `None`.

    Ctrl-C is the sweep process's to handle (it stops the workers). Each run sets torch's CPU
    threads itself (`engine.cpu_threads`, `runner.run_job`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_term)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if slot.startswith("cuda"):
        torch.cuda.set_device(torch.device(slot))
    for index, job in iter(conn.recv, None):
        try:
            fn(*job._replace(device=slot))
        except Exception as exc:  # noqa: BLE001 - the sweep goes on; the outcome says why
            outcome = outcome_of(job, exc)
            conn.send((index, outcome.error, outcome.lost_write))
        else:
            conn.send((index, None, False))


@dataclass
class _Worker:
    """One worker process, its own pipe, and the job it holds (None: idle or done)."""

    slot: str
    process: BaseProcess
    conn: Connection
    index: int | None = None


class LocalExecutor:
    """A pool of spawned worker processes on this machine, each pinned to one device slot.

    Spawned, not forked: forking a process that has touched torch (threads, CUDA) is unsafe. Each
    worker lives for the whole sweep, so its data cache serves every run it gets. Every worker has
    a pipe of its own, so no lock is shared: a worker that dies (killed, out of memory) loses only
    the run it held, which ends with an error and stays pending for the next sweep, and a fresh
    worker takes its slot. Stopping the sweep (Ctrl-C) stops the workers.
    """

    def __init__(self, slots: list[str]) -> None:
        self.slots = slots

    def _spawn(self, ctx: Any, slot: str, fn: JobFn) -> _Worker:
        conn, child = ctx.Pipe()
        # Not daemonic: a run on a streamed dataset starts its own decoding workers, which a
        # daemonic process may not. `run` terminates and joins its workers on every exit, and a
        # worker whose sweep died exits by itself (`_watch_parent`).
        process = ctx.Process(target=_worker, daemon=False, args=(slot, os.getpid(), fn, child))
        process.start()
        child.close()
        return _Worker(slot, process, conn)

    @staticmethod
    def _hand_out(worker: _Worker, jobs: Sequence[RunJob], todo: list[int]) -> None:
        worker.index = todo.pop() if todo else None
        try:
            worker.conn.send(None if worker.index is None else (worker.index, jobs[worker.index]))
        except OSError:
            pass  # it died: its sentinel says so, and its job is reported as lost

    @staticmethod
    def _collect(worker: _Worker, jobs: Sequence[RunJob]) -> Outcome | None:
        """The outcome of the worker's job if it has ended: its report, or its worker's death."""
        try:
            if worker.conn.poll():
                index, error, lost_write = worker.conn.recv()
                worker.index = None
                return Outcome(jobs[index], error, lost_write)
        except (EOFError, OSError):
            pass
        if worker.process.is_alive() or worker.index is None:
            return None
        index, worker.index = worker.index, None
        return Outcome(
            jobs[index],
            f"its worker process died (exit code "
            f"{worker.process.exitcode}: killed, or out of memory?)",
        )

    def run(self, fn: JobFn, jobs: Sequence[RunJob], tick: Tick | None = None) -> Iterator[Outcome]:
        if not jobs:
            return
        ctx = multiprocessing.get_context("spawn")
        todo = list(range(len(jobs)))[::-1]
        workers: list[_Worker] = []
        try:
            for slot in self.slots:
                workers.append(self._spawn(ctx, slot, fn))
                self._hand_out(workers[-1], jobs, todo)
            while busy := [w for w in workers if w.index is not None]:
                wait([handle for w in busy for handle in (w.conn, w.process.sentinel)], TICK_S)
                if tick is not None:
                    tick()
                ended = [(w, o) for w in busy if (o := self._collect(w, jobs)) is not None]
                # A lost write first: the sweep stops on it before another run is handed out.
                ended.sort(key=lambda pair: not pair[1].lost_write)
                for worker, outcome in ended:
                    yield outcome
                    if not worker.process.is_alive() and todo:
                        workers[workers.index(worker)] = worker = self._spawn(ctx, worker.slot, fn)
                    self._hand_out(worker, jobs, todo)
        except BaseException:  # Ctrl-C, or the caller stopped early: runs cut short are redone
            for worker in workers:
                worker.process.terminate()
            raise
        finally:
            for worker in workers:
                worker.process.join()
                worker.conn.close()


def make_executor(entry: ExecutorEntry, device: str, folder: Path, job_name: str) -> Executor:
    """The executor a suite asks for; errors in its settings surface here, before any run starts.

    `folder` is where the `slurm` executor keeps its scripts, logs and job ids.
    """
    if entry.kind == "slurm":
        if importlib.util.find_spec("submitit") is None:
            raise ConfigError("executor 'slurm' needs submitit: pip install -e '.[slurm]'")
        from nlbench.slurm import SlurmExecutor

        return SlurmExecutor(entry, Path(entry.log_dir) if entry.log_dir else folder, job_name)
    resolved = resolve_device(device)
    if entry.kind == "local":
        return LocalExecutor(device_slots(resolved, entry))
    return SerialExecutor(resolved)
