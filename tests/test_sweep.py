"""Sweeps end to end on tiny synthetic data (CPU, seconds): resume, corrupt records, CE learning."""

from __future__ import annotations

import json

import torch

import nlbench
from nlbench.cli import main
from nlbench.expansion import expand
from nlbench.methods.ce import CrossEntropy
from nlbench.runner import run_sweep
from nlbench.store import Store
from nlbench.suite_loading import load_suite

SUITE = """
name: tiny
datasets: [{name: synthetic, options: {n_train: 256, n_test: 128, num_classes: 4, size: 8}}]
noise:
  - {model: sym, ratios: [0.0, 0.4]}
methods:
  - {name: ce, hparams: {network: mlp, epochs: 3, batch_size: 32, lr: 0.05}}
seeds: [0, 1]
engine: {progress: false}
"""


def test_clean_synthetic_ce_reaches_high_accuracy(write_suite, tmp_path):
    suite = load_suite(
        write_suite(SUITE), ["noise.0.ratios=[0.0]", "seeds=[0]", "methods.ce.hparams.epochs=8"]
    )
    store = Store(tmp_path / "results" / "tiny")
    run_sweep(suite, expand(suite), store, device_name="cpu")
    (record,) = store.load()[0]
    assert record.status == "ok"
    assert record.final.last_acc > 90.0
    assert record.noise.realised_rate == 0.0
    assert len(record.epochs) == 8 and record.epochs[0].seconds["train"] > 0
    # The record names the code that ran, whether its tree was dirty, and every hyperparameter.
    assert record.schema_version == 2 and record.env.nlbench_version == nlbench.__version__
    assert isinstance(record.env.dirty, bool) and record.env.nlbench_commit
    assert record.env.threads == torch.get_num_threads()
    assert set(record.spec.method.hparams) == set(CrossEntropy.HParams.model_fields)


def test_half_done_sweep_runs_only_the_rest(write_suite, tmp_path):
    suite = load_suite(write_suite(SUITE))
    specs = expand(suite)
    store = Store(tmp_path / "results" / "tiny")
    first = run_sweep(suite, specs[:2], store, device_name="cpu")
    assert first.ran == 2
    before = {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.json")}
    second = run_sweep(suite, specs, store, device_name="cpu")
    assert (second.ran, second.skipped) == (2, 2)
    after = {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.json")}
    assert all(after[name] == mtime for name, mtime in before.items())  # untouched
    assert len(after) == 4


def test_same_seed_reproduces_exactly(write_suite, tmp_path):
    suite = load_suite(write_suite(SUITE), ["seeds=[0]", "noise.0.ratios=[0.4]"])
    (spec,) = expand(suite)
    accs = []
    for i in range(2):
        store = Store(tmp_path / f"r{i}")
        run_sweep(suite, [spec], store, device_name="cpu")
        accs.append([e.test_acc for e in store.load()[0][0].epochs])
    assert accs[0] == accs[1]


def test_truncated_record_is_redone_and_reported(write_suite, tmp_path, capsys):
    path = write_suite(SUITE)
    assert main(["run", str(path), "--no-progress"]) == 0
    results = tmp_path / "results" / "tiny"
    victim = sorted(results.glob("*.json"))[0]
    others = {p.name: p.read_text() for p in results.glob("*.json") if p != victim}
    victim.write_text(victim.read_text()[:100])
    capsys.readouterr()
    assert main(["run", str(path), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert victim.name in err and "unreadable" in err
    assert json.loads(victim.read_text())["status"] == "ok"  # redone
    assert {p.name: p.read_text() for p in results.glob("*.json") if p != victim} == others
    assert len(list(results.glob(f"{victim.name}.corrupt-*"))) == 1  # bytes kept


def test_report_command_flags_corrupt_record(write_suite, tmp_path, capsys):
    path = write_suite(SUITE)
    main(["run", str(path), "--no-progress", "--set", "seeds=[0]"])
    results = tmp_path / "results" / "tiny"
    (results / "deadbeef0000.json").write_text('{"schema": 1, "run_id": "dead')
    capsys.readouterr()
    assert main(["report", str(results), "--out", str(tmp_path / "rep")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deadbeef0000.json" in err[0]
    assert (tmp_path / "rep" / "leaderboard.md").exists()


def test_dry_run_lists_runs_without_training(write_suite, tmp_path, capsys):
    assert main(["run", str(write_suite(SUITE)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs (0 done)" in out
    assert not (tmp_path / "results").exists()
