"""The `slurm` executor against a real Slurm (scripts/ci/slurm-single-node.sh starts one on this
machine): a sweep as one job array, a cancelled job redone by a rerun, and a pre-empted job
requeued through submitit's checkpoint hook. Skipped where no Slurm cluster answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlbench.cli import main
from nlbench.expansion import expand
from nlbench.store import Store
from nlbench.suite_loading import load_suite

ROOT = Path(__file__).resolve().parents[2]


def _cluster_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    try:  # a controller that is down makes scontrol retry for seconds: a short timeout says no
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=3, check=False
        )
        if "UP" not in ping.stdout:
            return False
        nodes = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return bool({"idle", "mixed", "allocated", "completing"} & set(nodes.stdout.split()))


pytestmark = [
    pytest.mark.skipif(
        not _cluster_up(),
        reason="no Slurm cluster answers (start one with scripts/ci/slurm-single-node.sh)",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
pytest.importorskip("submitit")

SUITE = """
name: onslurm
datasets: [{name: synthetic, options: {n_train: 256, n_test: 128, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.4]}]
methods:
  - {name: ce, hparams: {network: mlp, epochs: 3, batch_size: 32, lr: 0.05}}
seeds: [0, 1, 2]
executor: {kind: slurm, cpus_per_run: 1, mem_gb: 1, timeout_min: 5}
engine: {progress: false}
"""
# One run long enough (~35 ms an epoch on one CPU) to be caught mid-way, checkpointing often.
LONG = [
    "seeds=[0]",
    "dataset.options={n_train: 2048, n_test: 256, num_classes: 4, size: 16}",
    "methods.ce.hparams.epochs=400",
    "engine.checkpoint_every=10",
]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _start(path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "run", str(path), "--no-progress", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _job_id(results: Path) -> tuple[str, str]:
    """(run_id, Slurm job id) of the only run, once the sweep has submitted it."""
    ledger = results / "slurm" / "jobs.json"
    _wait(ledger.exists, 60, "the submission")
    ((run_id, job_id),) = json.loads(ledger.read_text()).items()
    return run_id, job_id


def test_sweep_runs_as_one_job_array(write_suite, tmp_path, capsys):
    path = write_suite(SUITE)
    assert main(["run", str(path)]) == 0
    assert "3 runs, 3 trained, 0 already stored, 0 failed" in capsys.readouterr().out
    results = tmp_path / "results" / "onslurm"
    records = Store(results).load()[0]
    assert {r.run_id for r in records} == {s.run_id for s in expand(load_suite(path))}
    assert all(r.status == "ok" and len(r.epochs) == 3 for r in records)
    job_ids = json.loads((results / "slurm" / "jobs.json").read_text()).values()
    assert len({job_id.split("_")[0] for job_id in job_ids}) == 1  # one array
    assert main(["run", str(path)]) == 0
    assert "0 trained, 3 already stored" in capsys.readouterr().out


def test_cancelled_job_is_redone_by_a_rerun_from_its_checkpoint(write_suite, tmp_path, capsys):
    path = write_suite(SUITE)
    results = tmp_path / "results" / "onslurm"
    sweep = _start(path, *[arg for item in LONG for arg in ("--set", item)])
    run_id, job_id = _job_id(results)
    checkpoint = Store(results).checkpoint_path(run_id)
    _wait(checkpoint.exists, 120, "the first checkpoint")
    subprocess.run(["scancel", job_id], check=True)
    out = sweep.communicate(timeout=120)[0]
    assert "1 runs, 0 trained" in out and "crashed, no record" in out and "CANCELLED" in out
    assert not Store(results).path(run_id).exists() and checkpoint.exists()

    assert main(["run", str(path), "--no-progress", *[a for i in LONG for a in ("--set", i)]]) == 0
    assert "1 trained, 0 already stored, 0 failed" in capsys.readouterr().out
    (record,) = Store(results).load()[0]
    assert record.status == "ok" and len(record.epochs) == 400
    assert record.resumed_from_epoch >= 10  # picked up from the cancelled job's checkpoint
    assert json.loads((results / "slurm" / "jobs.json").read_text())[run_id] != job_id


def test_preempted_job_requeues_itself_and_resumes(write_suite, tmp_path):
    path = write_suite(SUITE)
    results = tmp_path / "results" / "onslurm"
    sweep = _start(path, *[arg for item in LONG for arg in ("--set", item)])
    run_id, job_id = _job_id(results)
    _wait(Store(results).checkpoint_path(run_id).exists, 120, "the first checkpoint")
    # What Slurm does to a pre-empted job (and submitit's Job._interrupt): TERM, then USR2.
    subprocess.run(["scancel", "--signal", "TERM", job_id], check=True)
    subprocess.run(["scancel", "--signal", "USR2", job_id], check=True)
    out = sweep.communicate(timeout=180)[0]
    assert sweep.returncode == 0, out
    assert "1 trained, 0 already stored, 0 failed" in out
    (record,) = Store(results).load()[0]
    assert record.status == "ok" and len(record.epochs) == 400
    assert record.resumed_from_epoch >= 10
    restarts = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, check=False, text=True
    ).stdout
    assert "Restarts=1" in restarts or not restarts  # the job may have aged out of scontrol


def test_rerun_waits_for_jobs_of_a_killed_sweep_instead_of_submitting_them_twice(
    write_suite, tmp_path, capsys
):
    path = write_suite(SUITE)
    results = tmp_path / "results" / "onslurm"
    sweep = _start(path, *[arg for item in LONG for arg in ("--set", item)])
    run_id, job_id = _job_id(results)
    _wait(Store(results).checkpoint_path(run_id).exists, 120, "the first checkpoint")
    sweep.kill()  # the sweep process dies; its job runs on
    sweep.communicate()
    assert main(["run", str(path), "--no-progress", *[a for i in LONG for a in ("--set", i)]]) == 0
    assert "1 trained, 0 already stored, 0 failed" in capsys.readouterr().out
    assert json.loads((results / "slurm" / "jobs.json").read_text()) == {run_id: job_id}
    (record,) = Store(results).load()[0]
    assert record.status == "ok" and record.resumed_from_epoch is None  # one job did it all
