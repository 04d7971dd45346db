"""Sweeps that survive: kill -9 mid-sweep, a run killed after a checkpoint, a NaN run, and a report
built while records are being written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nlbench.cli import main
from nlbench.config import expand, load_suite
from nlbench.methods.api import register
from nlbench.methods.ce import CrossEntropy
from nlbench.report import build_report
from nlbench.runner import run_sweep
from nlbench.store import Store

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
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 2 trained" in out and "1 failed" in out and "is nan" in out
    records = {r.spec.method["name"]: r for r in Store(results).load()[0]}
    nan = records["test_nan_after_epoch_0"]
    assert nan.status == "failed" and nan.failure.epoch == 1
    assert "loss 'loss' is nan" in nan.failure.reason and len(nan.epochs) == 1
    assert records["ce"].status == "ok" and len(records["ce"].epochs) == 3
    leaderboard = (tmp_path / "reports" / "faults" / "leaderboard.md").read_text()
    assert nan.run_id in leaderboard and "is nan" in leaderboard

    before = _records(results)
    assert main(["run", str(path), "--no-progress"]) == 0  # failed runs stay failed
    assert "0 trained" in capsys.readouterr().out and _records(results) == before
    assert main(["run", str(path), "--no-progress", "--retry-failed"]) == 0
    assert "1 trained, 1 already stored" in capsys.readouterr().out
    after = _records(results)
    ce_file, nan_file = f"{records['ce'].run_id}.json", f"{nan.run_id}.json"
    assert after[ce_file] == before[ce_file] and after[nan_file] != before[nan_file]


WRITER = """
import copy, json, sys, time
from pathlib import Path
from nlbench.records import parse_record
from nlbench.store import Store
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
