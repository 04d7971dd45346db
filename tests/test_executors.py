"""Executors: local workers match serial, get their device slot and thread share; crashes are
reported without a record and retried; a missing Slurm is a clear error before anything changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from nlbench import run
from nlbench.errors import ConfigError, StorageError
from nlbench.executors import (
    LocalExecutor,
    RunJob,
    SerialExecutor,
    device_slots,
    make_executor,
)
from nlbench.expansion import expand
from nlbench.runner import run_sweep
from nlbench.store import Store
from nlbench.suite import ExecutorEntry
from nlbench.suite_loading import load_suite

SUITE = """
name: tiny
datasets: [{name: synthetic, options: {n_train: 192, n_test: 96, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.4]}]
methods:
  - {name: ce, hparams: {network: mlp, epochs: 3, batch_size: 32, lr: 0.05}}
seeds: [0, 1, 2]
engine: {progress: false}
"""


def _epochs(store: Store) -> dict[str, list]:
    return {r.run_id: [(e.test_acc, e.losses) for e in r.epochs] for r in store.load()[0]}


@pytest.mark.slow
def test_the_same_run_id_gives_the_same_numbers_under_serial_and_local(write_suite, tmp_path):
    """Each run sets its own thread count from the spec, whatever the process had: a serial sweep
    in a process on 2 threads and 2 workers give bit-identical epochs."""
    suite = load_suite(write_suite(SUITE))
    specs = expand(suite)
    serial, local = Store(tmp_path / "serial"), Store(tmp_path / "local")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_sweep(suite, specs, serial, device_name="cpu")
    finally:
        torch.set_num_threads(before)
    suite = load_suite(write_suite(SUITE), ["executor.kind=local", "executor.workers=2"])
    summary = run_sweep(suite, specs, local, device_name="cpu")
    assert (summary.ran, summary.failed) == (3, [])
    assert _epochs(local) == _epochs(serial) and len(_epochs(serial)) == 3
    assert {r.env.threads for store in (serial, local) for r in store.load()[0]} == {1}


def test_cpu_threads_is_part_of_the_run_id(write_suite):
    plain = {s.run_id for s in expand(load_suite(write_suite(SUITE)))}
    two = {s.run_id for s in expand(load_suite(write_suite(SUITE), ["engine.cpu_threads=2"]))}
    again = {s.run_id for s in expand(load_suite(write_suite(SUITE), ["engine.cpu_threads=1"]))}
    assert plain == again and not plain & two


def _probe(
    spec: dict, run_id: str, options: dict, results_dir: str, device: str, *rest: object
) -> None:
    """A job that reports where it ran (imported by the spawned workers from this module); job 2
    kills its worker, as the out-of-memory killer would."""
    if spec["n"] == 2:
        os._exit(9)
    out = Path(results_dir) / f"{spec['n']}.json"
    out.write_text(json.dumps({"device": device, "pid": os.getpid()}))


@pytest.mark.slow
def test_local_workers_take_a_slot_and_survive_a_death(tmp_path):
    jobs = [RunJob({"n": n}, f"run{n}", {}, str(tmp_path), "auto") for n in range(5)]
    outcomes = list(LocalExecutor(["cpu", "cpu"]).run(_probe, jobs))
    assert sorted(o.job.spec["n"] for o in outcomes) == [0, 1, 2, 3, 4]
    assert {o.job.spec["n"]: o.error is None for o in outcomes} == {
        0: True,
        1: True,
        2: False,
        3: True,
        4: True,
    }  # the others went on
    assert "worker process died" in next(o.error for o in outcomes if o.job.spec["n"] == 2)
    seen = [json.loads((tmp_path / f"{n}.json").read_text()) for n in (0, 1, 3, 4)]
    assert {s["device"] for s in seen} == {"cpu"}
    assert os.getpid() not in {s["pid"] for s in seen}


def test_device_slots_spread_runs_over_gpus(monkeypatch):
    assert device_slots(torch.device("cpu"), ExecutorEntry(kind="local")) == ["cpu", "cpu"]
    assert device_slots(torch.device("cpu"), ExecutorEntry(kind="local", workers=3)) == ["cpu"] * 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    entry = ExecutorEntry(kind="local", runs_per_device=2)
    assert device_slots(torch.device("cuda"), entry) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert device_slots(torch.device("cuda"), entry.model_copy(update={"workers": 3})) == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
    ]
    assert device_slots(torch.device("cuda:1"), entry) == ["cuda:1", "cuda:1"]


def _boom(spec: dict, *rest: object) -> None:
    if spec["n"] == 1:
        raise OSError("disk on fire")


def _lost(spec: dict, run_id: str, options: dict, results_dir: str, *rest: object) -> None:
    """Job 1 cannot store its results; every job notes that it started."""
    with (Path(results_dir) / "started").open("a") as handle:
        handle.write(f"{spec['n']}\n")
    if spec["n"] == 1:
        raise StorageError("could not write the record of run 1 (No space left on device)")


@pytest.mark.parametrize("kind", ["serial", pytest.param("local", marks=pytest.mark.slow)])
def test_a_lost_write_is_one_line_and_stopping_on_it_hands_out_nothing_more(kind, tmp_path):
    jobs = [RunJob({"n": n}, f"run{n}", {}, str(tmp_path), "cpu") for n in range(6)]
    pool = SerialExecutor(torch.device("cpu")) if kind == "serial" else LocalExecutor(["cpu"])
    seen = []
    for outcome in pool.run(_lost, jobs):
        seen.append(outcome)
        if outcome.lost_write:
            break  # what the sweep does: it raises here
    assert [o.job.spec["n"] for o in seen] == [0, 1] and not seen[0].lost_write
    assert seen[1].error == "could not write the record of run 1 (No space left on device)"
    assert (tmp_path / "started").read_text().split() == ["0", "1"]


def test_serial_executor_turns_a_crash_into_an_outcome():
    jobs = [RunJob({"n": n}, f"run{n}", {}, "", "cpu") for n in range(3)]
    outcomes = list(SerialExecutor(torch.device("cpu")).run(_boom, jobs))
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert "OSError: disk on fire" in outcomes[1].error and "Traceback" in outcomes[1].error


def test_crashed_run_has_no_record_the_sweep_goes_on_and_a_rerun_retries_it(
    write_suite, tmp_path, monkeypatch, capsys
):
    suite = load_suite(write_suite(SUITE))
    specs = expand(suite)
    store = Store(tmp_path / "results" / "tiny")
    real_run_one = run.run_one

    def flaky(spec, *args, **kwargs):
        if spec.run_id == specs[1].run_id:
            raise OSError("disk on fire")
        return real_run_one(spec, *args, **kwargs)

    monkeypatch.setattr(run, "run_one", flaky)
    summary = run_sweep(suite, specs, store, device_name="cpu")
    assert (summary.ran, summary.crashed) == (2, 1)
    assert "crashed, no record" in summary.failed[0] and "disk on fire" in summary.failed[0]
    assert "OSError: disk on fire" in capsys.readouterr().err
    assert not store.path(specs[1].run_id).exists()
    monkeypatch.setattr(run, "run_one", real_run_one)
    again = run_sweep(suite, specs, store, device_name="cpu")
    assert (again.ran, again.skipped, again.crashed) == (1, 2, 0)
    assert store.path(specs[1].run_id).exists()


def test_slurm_without_sbatch_is_one_clear_error_and_nothing_changes(
    write_suite, tmp_path, monkeypatch
):
    results = tmp_path / "results" / "tiny"
    results.mkdir(parents=True)
    (results / "0123456789ab.json").write_text("{}")  # unreadable: would be moved aside
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    suite = load_suite(write_suite(SUITE), ["executor.kind=slurm"])
    with pytest.raises(ConfigError, match="sbatch|submitit"):
        run_sweep(suite, expand(suite), Store(results), device_name="cpu")
    assert [p.name for p in results.iterdir()] == ["0123456789ab.json"]


def test_local_asking_for_a_missing_gpu_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        make_executor(ExecutorEntry(kind="local"), "cuda", tmp_path, "x")
