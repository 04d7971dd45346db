"""The Slurm executor's watch loop without a cluster (needs submitit, the `slurm` extra)."""

from __future__ import annotations

import pytest
from test_executors import SUITE  # the executors' tiny suite, three runs

from nlbench.expansion import expand
from nlbench.jobs import RunJob
from nlbench.suite_loading import load_suite

slurm = pytest.importorskip("nlbench.slurm", exc_type=ImportError)


def test_a_slurm_job_that_lost_its_write_cancels_the_rest_of_the_array(
    write_suite, tmp_path, monkeypatch
):
    """The watch loop without a cluster: every job has left the queue, no record appeared, and
    job 7_0's log ends with a StorageError. The sweep hears one lost write and cancels the other
    jobs at once (they would lose their results the same way)."""
    suite = load_suite(write_suite(SUITE))
    jobs = [
        RunJob(spec, spec.run_id, suite.engine, str(tmp_path / "results"), "cpu")
        for spec in expand(suite)
    ]
    folder = tmp_path / "slurm"
    folder.mkdir()
    (folder / "7_0_0_log.err").write_text(
        "Traceback (most recent call last):\n  ...\nnlbench.errors.StorageError: could not write "
        "the record of ce | x (abc) to /r/abc.json (No space left on device)\n"
    )
    cancelled: list[list[str]] = []
    monkeypatch.setattr(slurm, "queue_states", lambda: {})
    monkeypatch.setattr(slurm, "cancel", cancelled.append)
    executor = object.__new__(slurm.SlurmExecutor)
    executor.folder, executor.max_poll_s = folder, 0.0
    waiting = [
        slurm._Pending(job, f"7_{i}", tmp_path / f"{i}.json", None) for i, job in enumerate(jobs)
    ]
    outcomes = list(executor._watch(waiting))
    assert len(outcomes) == 1 and outcomes[0].lost_write
    assert "No space left on device" in outcomes[0].error
    assert cancelled == [[f"7_{i}" for i in range(1, len(jobs))]]
