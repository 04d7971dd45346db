"""What executors exchange with a sweep: a run as plain data in, an outcome out.

`RunJob` pickles to a spawned worker or a Slurm job; `Outcome` carries no result, because the
record the job wrote is the result (the store is the only state a sweep shares). Both executor
modules (`executors`, `slurm`) build on these, and neither imports the other.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from nlbench.engine.options import EngineOptions
from nlbench.errors import StorageError
from nlbench.run_spec import RunSpec
from nlbench.tracking import TrackingOptions

JobFn = Callable[..., Any]


class RunJob(NamedTuple):
    """One run as typed data that pickles to a spawned worker or a Slurm job: `fn(*job)`.

    `run_id` is the id the sweep computed (its data identity included), so the job stores its
    record under the id the sweep waits for. `device` is the suite's device name ("auto", "cpu",
    "cuda"); the executor replaces it with the slot a run gets where it executes.
    """

    spec: RunSpec
    run_id: str
    options: EngineOptions
    results_dir: str
    device: str
    tracking: TrackingOptions | None = None


@dataclass(frozen=True)
class Outcome:
    """A job that ended: `error` is None when it ended normally (its record says how it went)."""

    job: RunJob
    error: str | None = None
    lost_write: bool = False
    """The job could not store its results (a record, checkpoint or log not written, or no room
    for them): `error` is that one line, and the sweep hands out no further run."""


Tick = Callable[[], None]
"""Called every second or so while jobs run elsewhere, so the sweep can show their progress."""


class Executor(Protocol):
    """Runs `fn(*job)` for every job, yielding each job's outcome as soon as it ends."""

    def run(
        self, fn: JobFn, jobs: Sequence[RunJob], tick: Tick | None = None
    ) -> Iterator[Outcome]: ...


def describe_error(exc: BaseException) -> str:
    """The full traceback (a worker's remote one included), so a crash can be debugged from it."""
    return "".join(traceback.format_exception(exc)).rstrip()


def outcome_of(job: RunJob, exc: BaseException) -> Outcome:
    """The outcome of a job that raised: a storage failure as its one line (the sweep stops on
    it), anything else as its full traceback."""
    if isinstance(exc, StorageError):
        return Outcome(job, str(exc), lost_write=True)
    return Outcome(job, describe_error(exc))
