"""Sweeps that survive: kill -9 mid-sweep, a run killed after a checkpoint, a NaN run, a report
built while records are being written, and results that can no longer be written mid-sweep."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from factories import record_dict

from nlbench import runner
from nlbench.cli import main
from nlbench.engine import Engine, loop
from nlbench.expansion import expand
from nlbench.methods.api import register
from nlbench.methods.ce import CrossEntropy
from nlbench.records import parse_record
from nlbench.report import build_report
from nlbench.run import run_job
from nlbench.run_spec import RunSpec
from nlbench.runner import run_sweep
from nlbench.store import Store
from nlbench.suite_loading import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = """
name: faults
datasets: [{name: synthetic, options: {n_train: 256, n_test: 128, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2, 0.4]}]
methods:
  - {name: ce, hparams: {network: mlp, epochs: 30, batch_size: 32, lr: 0.05}}
seeds: [0, 1, 2, 3]
engine: {progress: false, checkpoint_every: 5}
"""


@register("test_nan_after_epoch_0")
class NanAfterEpoch0(CrossEntropy):
    """CE whose loss turns NaN from epoch 1 on: a diverging run, deterministic and cheap."""

    def begin_epoch(self, epoch: int):
        self.epoch = epoch
        return super().begin_epoch(epoch)

    def train_step(self, batch):
        x, y = batch["all"].views[0], batch["all"].labels
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        if self.epoch >= 1:
            loss = loss * float("nan")
        self.step(loss, self.optimizer)
        return {"loss": loss.detach()}


def _records(results: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}


@pytest.mark.slow
def test_kill_9_mid_sweep_then_rerun_finishes_without_redoing_or_duplicating(write_suite, tmp_path):
    path = write_suite(SUITE)
    results = tmp_path / "results" / "faults"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_bench.py"),
            "run",
            str(path),
            "--executor",
            "local",
            "--no-progress",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _records(results) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _records(results)
    assert 1 <= len(before) < 8, "the kill must land mid-sweep"
    assert main(["run", str(path), "--executor", "local", "--no-progress"]) == 0
    after = _records(results)
    assert len(after) == 8
    assert {json.loads((results / name).read_text())["run_id"] for name in after} == {
        spec.run_id for spec in expand(load_suite(path))
    }
    assert all(after[name] == mtime for name, mtime in before.items())  # nothing retrained
    assert [p.name for p in results.rglob("*.tmp")] == []
    assert list((results / "checkpoints").glob("*")) == []


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way up records it as a failure."""


def test_run_killed_mid_epoch_resumes_from_its_checkpoint_identically(
    write_suite, tmp_path, monkeypatch
):
    suite = load_suite(
        write_suite(SUITE),
        [
            "seeds=[0]",
            "noise.0.ratios=[0.4]",
            "methods.ce.hparams.epochs=6",
            "engine.checkpoint_every=1",
        ],
    )
    specs = expand(suite)
    whole, cut = Store(tmp_path / "whole"), Store(tmp_path / "cut")
    run_sweep(suite, specs, whole, device_name="cpu")

    steps = {"n": 0}
    real_step = CrossEntropy.train_step

    def dies_mid_epoch_3(self, batch):  # 8 steps an epoch: the 28th is the 4th of epoch 3
        steps["n"] += 1
        if steps["n"] == 28:
            raise _Killed
        return real_step(self, batch)

    monkeypatch.setattr(CrossEntropy, "train_step", dies_mid_epoch_3)
    with pytest.raises(_Killed):
        run_sweep(suite, specs, cut, device_name="cpu")
    assert cut.checkpoint_path(specs[0].run_id).exists() and cut.load()[0] == []
    monkeypatch.setattr(CrossEntropy, "train_step", real_step)
    run_sweep(suite, specs, cut, device_name="cpu")

    (a,), (b,) = whole.load()[0], cut.load()[0]
    assert b.resumed_from_epoch == 3
    strip = [e.model_dump(exclude={"seconds", "images_per_second"}) for e in a.epochs]
    assert [e.model_dump(exclude={"seconds", "images_per_second"}) for e in b.epochs] == strip
    assert b.final == a.final
    assert not cut.checkpoint_path(specs[0].run_id).exists()


NAN_SUITE = """
name: faults
datasets: [{name: synthetic, options: {n_train: 256, n_test: 128, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.4]}]
methods:
  - {name: ce, hparams: {network: mlp, epochs: 3, batch_size: 32}}
  - {name: test_nan_after_epoch_0, hparams: {network: mlp, epochs: 3, batch_size: 32}}
engine: {progress: false}
"""


def test_nan_run_is_recorded_as_failed_the_sweep_goes_on_and_retry_reruns_only_it(
    write_suite, tmp_path, capsys
):
    path = write_suite(NAN_SUITE)
    results = tmp_path / "results" / "faults"
    assert main(["run", str(path), "--no-progress"]) == 3
    out, err = capsys.readouterr()
    assert "2 runs, 2 trained" in out and "1 failed" in out and "is nan" in out
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("error: 1 of 2 runs did not succeed: 1 failed in this sweep")
    )
    records = {r.spec.method.name: r for r in Store(results).load()[0]}
    nan = records["test_nan_after_epoch_0"]
    assert nan.status == "failed" and nan.failure.epoch == 1
    assert "loss 'loss' is nan" in nan.failure.reason and len(nan.epochs) == 1
    assert records["ce"].status == "ok" and len(records["ce"].epochs) == 3
    leaderboard = (tmp_path / "reports" / "faults" / "leaderboard.md").read_text()
    assert nan.run_id in leaderboard and "is nan" in leaderboard

    before = _records(results)
    assert main(["run", str(path), "--no-progress"]) == 3  # failed runs stay failed, and say so
    out, err = capsys.readouterr()
    assert "0 trained, 2 already stored, 0 failed, 1 failed earlier and kept" in out
    assert "failed earlier, kept: test_nan_after_epoch_0 | synthetic" in out
    last = err.strip().splitlines()[-1]
    assert "1 failed in an earlier sweep and were kept" in last and "--retry-failed" in last
    assert _records(results) == before
    assert main(["run", str(path), "--no-progress", "--retry-failed"]) == 3
    assert "1 trained, 1 already stored" in capsys.readouterr().out
    after = _records(results)
    ce_file, nan_file = f"{records['ce'].run_id}.json", f"{nan.run_id}.json"
    assert after[ce_file] == before[ce_file] and after[nan_file] != before[nan_file]


def test_a_failed_run_fails_the_sweep_and_is_retried_once_its_cause_changed(
    write_suite, tmp_path, monkeypatch, capsys
):
    """A run that failed on an engine option (an eval batch size the engine cannot use) used to
    exit 0, and after the option was fixed a plain rerun printed '0 trained, 1 already stored,
    0 failed' and kept the failure."""
    real_evaluate = Engine.evaluate

    def evaluate(self, method):
        if self.options.eval_batch_size == 7:
            raise RuntimeError("no kernel for an eval batch of 7")
        return real_evaluate(self, method)

    monkeypatch.setattr(Engine, "evaluate", evaluate)
    path = write_suite(SUITE)
    one = ["--no-progress", "--set", "seeds=[0]", "--set", "noise.0.ratios=[0.2]",
           "--set", "methods.ce.hparams.epochs=2"]  # fmt: skip
    bad = [*one, "--set", "engine.eval_batch_size=7"]
    assert main(["run", str(path), *bad]) == 3
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 1 runs did not succeed: 1 failed in this sweep")
    assert main(["run", str(path), *bad]) == 3  # nothing changed: kept, and it says how to retry
    out, err = capsys.readouterr()
    assert "0 trained, 1 already stored, 0 failed, 1 failed earlier and kept" in out
    assert "no kernel for an eval batch of 7" in out and "--retry-failed" in err.splitlines()[-1]
    assert main(["run", str(path), *one]) == 0  # the cause fixed: retried without a flag
    assert "1 trained, 0 already stored, 0 failed" in capsys.readouterr().out
    (record,) = Store(tmp_path / "results" / "faults").load()[0]
    assert record.ok and record.engine_options["eval_batch_size"] == 1024


def test_a_failed_run_is_retried_when_its_data_root_moved_but_not_its_report_label(tmp_path):
    failed = record_dict(failure={"reason": "data folder half copied", "epoch": 0}, accs=())
    spec = RunSpec.model_validate(failed["spec"] | {"dataset": {"name": "cifar10", "root": "/a"}})
    failed |= {"run_id": spec.run_id, "spec": spec.model_dump()}
    store = Store(tmp_path)
    store.write(parse_record(failed))

    def pending(**dataset: str) -> tuple[int, list[str]]:
        moved = spec.model_copy(update={"dataset": spec.dataset.model_copy(update=dataset)})
        summary = runner.SweepSummary(total=1)
        todo, _ = runner.pending_runs([moved], store, False, summary)
        assert moved.run_id == spec.run_id  # neither root nor label is part of the run id
        return len(todo), summary.kept

    assert pending() == (0, ["ce | cifar10 | sym 0.2 | seed 0: data folder half copied"])
    assert pending(label="c10") == (0, ["ce | c10 | sym 0.2 | seed 0: data folder half copied"])
    assert pending(root="/b") == (1, [])


WRITER = """
import copy, json, sys, time
from pathlib import Path
from nlbench.records import parse_record
from nlbench.store import Store
from nlbench.records import parse_record
template = json.loads(Path(sys.argv[1]).read_text())
store, stop = Store(Path(sys.argv[2])), Path(sys.argv[3])
i = 0
while not stop.exists():
    record = copy.deepcopy(template)
    record["run_id"] = f"{i % 40:012x}"          # new records, then rewrites of the same ones
    record["spec"]["seed"] = i % 40
    store.write(parse_record(record))
    i += 1
    time.sleep(0.002)
print(i)
"""


@pytest.mark.slow
def test_report_builds_while_another_process_writes_records(write_suite, tmp_path):
    suite = load_suite(
        write_suite(SUITE), ["seeds=[0]", "noise.0.ratios=[0.4]", "methods.ce.hparams.epochs=2"]
    )
    seed = Store(tmp_path / "seed")
    run_sweep(suite, expand(suite), seed, device_name="cpu")
    template = next(seed.root.glob("*.json"))
    live, stop = tmp_path / "live", tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(template), str(live), str(stop)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        while not list(live.glob("*.json")):
            time.sleep(0.01)
        for _ in range(3):
            assert writer.poll() is None
            records, problems = Store(live).load()
            assert problems == [] and all(r.final.last_acc >= 0 for r in records)
            paths = build_report(records, tmp_path / "report")
            assert paths.markdown.exists()
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=30)[0])
    assert written > 40  # the writer also rewrote records while reports read them
    assert len(Store(live).load()[0]) == 40


SHORT = [
    "--no-progress",
    "--set",
    "methods.ce.hparams.epochs=4",
    "--set",
    "engine.checkpoint_every=2",
]


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except OSError:
        return False


def _immutable_folders_work(tmp_path: Path) -> None:
    """Skip unless `chattr +i` makes a folder refuse new files here (root on ext4 does)."""
    probe = tmp_path / "chattr-probe"
    probe.mkdir()
    if not _chattr("+i", probe):
        pytest.skip("chattr +i is not available here (needs root and a filesystem that has it)")
    try:
        (probe / "x").touch()
    except OSError:
        return
    finally:
        _chattr("-i", probe)
    pytest.skip("chattr +i did not stop a new file here")


def _count_trained(monkeypatch) -> set[int]:
    """The engines (one per run) that took a training step."""
    trained: set[int] = set()
    real = loop.train_epoch

    def train_epoch(method, *rest):
        trained.add(id(method))
        return real(method, *rest)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)
    return trained


def _logs(results: Path) -> dict[str, str]:
    return {p.stem: p.read_text().splitlines()[-1] for p in (results / "logs").glob("*.log")}


@pytest.mark.parametrize("when", ["between runs", "during a run"])
def test_results_made_unwritable_mid_sweep_stop_it_at_the_first_lost_write(
    when, write_suite, tmp_path, monkeypatch, capsys, request
):
    """`chattr +i` on the results folder after 2 of 8 runs (serial): the sweep used to train the
    other 6 to the end, lose each to a PermissionError traceback, log '# ok', and exit 3."""
    _immutable_folders_work(tmp_path)
    path = write_suite(SUITE)
    results = tmp_path / "results" / "faults"
    request.addfinalizer(lambda: _chattr("-i", results))
    trained = _count_trained(monkeypatch)
    real_write = Store.write

    def write(self, record):
        if when == "during a run" and len(list(self.root.glob("*.json"))) == 2:
            _chattr("+i", self.root)
        written = real_write(self, record)
        if when == "between runs" and len(list(self.root.glob("*.json"))) == 2:
            _chattr("+i", self.root)
        return written

    monkeypatch.setattr(Store, "write", write)
    assert main(["run", str(path), *SHORT]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "2 of 8 runs are stored (untouched), 6 are not" in line
    if when == "between runs":
        assert "is not writable (Operation not permitted)" in line and len(trained) == 2
    else:
        assert "could not write the record of ce | synthetic" in line and len(trained) == 3
    stored = {p.stem for p in results.glob("*.json")}
    assert len(stored) == 2
    logs = _logs(results)
    assert {run for run, last in logs.items() if last.startswith("# ok")} == stored
    assert all(last.startswith("# stopped, nothing stored") for r, last in logs.items()
               if r not in stored)  # fmt: skip
    if when == "during a run":
        (lost,) = set(logs) - stored
        assert Store(results).checkpoint_path(lost).exists()  # kept for the rerun to resume

    _chattr("-i", results)
    before = _records(results)
    monkeypatch.setattr(Store, "write", real_write)
    assert main(["run", str(path), *SHORT]) == 0
    after = _records(results)
    assert len(after) == 8 and all(after[name] == mtime for name, mtime in before.items())
    if when == "during a run":
        (resumed,) = [r for r in Store(results).load()[0] if r.run_id == lost]
        assert resumed.resumed_from_epoch == 2


RECORDS_BEFORE_FULL = 2


def _run_job_on_a_filling_disk(*job):
    """`run_job` in a worker process whose results disk fills up once it holds 2 records: a
    record then fails with ENOSPC, and the disk reports no free space. Each run that takes a
    training step notes when, beside the results folder."""
    root = Path(job[3])
    full, started = root.parent / "disk_full", root.parent / "started"
    if not getattr(Store, "filling", False):
        Store.filling = True
        real_write, real_usage, real_train = Store.write, shutil.disk_usage, loop.train_epoch

        def write(self, record):
            if full.exists() or len(list(self.root.glob("*.json"))) >= RECORDS_BEFORE_FULL:
                if not full.exists():
                    full.write_text(repr(time.time()))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(self, record)

        def usage(where):
            found = real_usage(where)
            return found._replace(free=0) if full.exists() else found

        def train_epoch(method, *rest):
            if not getattr(method, "noted", False):
                method.noted = True
                with started.open("a") as handle:
                    handle.write(f"{time.time()!r}\n")
            return real_train(method, *rest)

        Store.write, shutil.disk_usage, loop.train_epoch = write, usage, train_epoch
    return run_job(*job)


@pytest.mark.slow
def test_a_full_disk_stops_a_local_sweep_at_the_first_lost_write_and_a_rerun_says_so(
    write_suite, tmp_path, monkeypatch, capsys
):
    """Results on a disk that fills up (2 local workers): the sweep used to train 6 runs and lose
    each to an OSError traceback, and a rerun while full passed the writability probe (an empty
    file fits) and lost 8 more."""
    path = write_suite(SUITE)
    results = tmp_path / "results" / "faults"
    local = [*SHORT, "--executor", "local", "--set", "executor.workers=2"]
    monkeypatch.setattr(runner, "run_job", _run_job_on_a_filling_disk)
    assert main(["run", str(path), *local]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert "No space left on device" in line and "the sweep stopped at once" in line
    stored = len(list(results.glob("*.json")))
    assert RECORDS_BEFORE_FULL <= stored <= RECORDS_BEFORE_FULL + 1  # two workers may race
    assert f"{stored} of 8 runs are stored" in line
    first_lost = float((tmp_path / "results" / "disk_full").read_text())
    starts = [float(t) for t in (tmp_path / "results" / "started").read_text().split()]
    assert max(starts) < first_lost  # no run started training after the first lost write
    assert len(starts) <= stored + 2  # those stored, the one lost, at most one cut short

    monkeypatch.setattr(runner, "run_job", run_job)
    trained = _count_trained(monkeypatch)
    before = _records(results)
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=40_000))
    assert main(["run", str(path), *local]) == 2  # still full: refused before anything trains
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 39 KB free, and a run needs about" in err[0], err
    assert "nothing was trained" in err[0] and not trained and _records(results) == before
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    assert main(["run", str(path), *local]) == 0
    after = _records(results)
    assert len(after) == 8 and all(after[name] == mtime for name, mtime in before.items())


def _one_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    return err[0]


HOLDER = """
import sys, time
from pathlib import Path
from nlbench.sweep_lock import sweep_lock
with sweep_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_sweep_on_a_folder_in_use_names_the_holder_and_kill_9_leaves_no_stale_lock(
    write_suite, tmp_path, monkeypatch, capsys
):
    path = write_suite(SUITE)
    results = tmp_path / "results" / "faults"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        trained = _count_trained(monkeypatch)
        assert main(["run", str(path), *SHORT, "--set", "seeds=[0]"]) == 2
        line = _one_error(capsys, f"in use by another sweep (pid {holder.pid} on ")
        assert f"on {socket.gethostname()}, started " in line and "--wait" in line
        assert not trained and not list(results.glob("*.json"))
    finally:
        holder.kill()  # SIGKILL: the kernel releases its lock
        holder.wait()
    assert main(["run", str(path), *SHORT, "--set", "seeds=[0]"]) == 0
    assert len(list(results.glob("*.json"))) == 2


@pytest.mark.slow
def test_two_sweeps_of_one_suite_at_once_train_each_run_once(write_suite, tmp_path):
    """Two sweeps of one suite on one folder used to train every pending run each."""
    path = write_suite(SUITE)
    argv = [sys.executable, str(ROOT / "run_bench.py"), "run", str(path), *SHORT,
            "--set", "seeds=[0, 1]", "--wait"]  # fmt: skip
    sweeps = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ends = [sweep.communicate(timeout=900) for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], ends
    trained = sorted(int(re.search(r"(\d+) trained", out).group(1)) for out, _ in ends)
    assert trained == [0, 4]
    logs = list((tmp_path / "results" / "faults" / "logs").glob("*.log"))
    assert len(logs) == 4
    assert all(log.read_text().count(", started ") == 1 for log in logs)


def test_another_suite_of_the_same_name_is_refused_and_an_edited_one_is_not(
    write_suite, tmp_path, monkeypatch, capsys
):
    """Two suite files with the same `name:` used to merge into one leaderboard, unwarned."""
    one = [*SHORT, "--set", "seeds=[0]", "--set", "noise.0.ratios=[0.2]"]
    first = write_suite(SUITE, "first.yaml")
    assert main(["run", str(first), *one]) == 0
    capsys.readouterr()
    other = write_suite(SUITE.replace("lr: 0.05", "lr: 0.1"), "other.yaml")
    trained = _count_trained(monkeypatch)
    assert main(["run", str(other), *one]) == 2
    line = _one_error(capsys, "is another suite of the same name")
    assert f"from {first}" in line and str(other) in line and not trained
    write_suite(SUITE.replace("lr: 0.05", "lr: 0.1"), "first.yaml")  # the same file, edited
    assert main(["run", str(first), *one]) == 0 and trained
    shutil.copy(first, tmp_path / "copy.yaml")  # the same suite, moved or copied
    assert main(["run", str(tmp_path / "copy.yaml"), *one, "--set", "seeds=[1]"]) == 0
