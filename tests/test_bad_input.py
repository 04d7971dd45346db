"""Each row of the "no wasted compute, no silent acceptance" table: the case reproduced, and now
one clear line (exit 2, nothing written, no epoch trained) or the right behaviour."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlbench.cli import main
from nlbench.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
BASE = """
name: bad
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]
engine: {progress: false}
device: cpu
"""


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if any run starts training."""
    calls = []
    monkeypatch.setattr(Engine, "fit", lambda *a, **k: calls.append(a) or 1 / 0)
    return calls


def one_line(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    return err[0]


def cifar_npz(path: Path, n: int = 40, top_label: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    if top_label is not None:
        labels[0] = top_label
    np.savez(path, x_train=rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), y_train=labels,
             x_test=rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8),
             y_test=np.arange(20) % 10, train_index=np.arange(n))  # fmt: skip
    return path


def cifarn_file(path: Path, n: int = 40, **override: np.ndarray) -> Path:
    clean = np.arange(n) % 10
    arrays = {"clean_label": clean, "worse_label": (clean + 3) % 10, **override}
    np.savez(path, **arrays)
    return path


def npz_suite(data: Path, noise: str = "{model: sym, ratios: [0.2]}") -> str:
    return BASE.replace(
        "{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}",
        f"{{name: npz, options: {{path: {data}, family: cifar10}}}}",
    ).replace("{model: sym, ratios: [0.2]}", noise)


@pytest.mark.parametrize("what", ["results_dir", "reports_dir"])
def test_unwritable_results_or_reports_stop_before_any_epoch(
    what, write_suite, tmp_path, capsys, no_training
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["run", str(write_suite(BASE)), "--set", f"{what}={blocker / 'sub'}"])
    assert code == 2 and no_training == []
    line = one_line(capsys, "is not writable")
    assert f"--set {what}=PATH" in line and "nothing was trained" in line


def test_npz_labels_beyond_the_family_are_refused(write_suite, tmp_path, capsys, no_training):
    data = cifar_npz(tmp_path / "wide.npz", top_label=999)
    assert main(["run", str(write_suite(npz_suite(data)))]) == 2
    one_line(capsys, "has label 999, but family 'cifar10' has 10 classes")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"worse_label": (np.arange(40) % 10) + 0.7}, "expected a 1-D array of whole-number"),
        ({"worse_label": np.arange(30) % 10}, "has 30 labels but 'clean_label' has 40"),
        ({"clean_label": np.arange(30) % 10, "worse_label": np.arange(30) % 10},
         "train_index reaches 39 but CIFAR-N file"),
    ],
)  # fmt: skip
def test_bad_cifarn_arrays_are_one_line(override, needle, write_suite, tmp_path, capsys):
    data = cifar_npz(tmp_path / "sub.npz")
    labels = cifarn_file(tmp_path / "c10n.npz", **override)
    noise = f"{{model: cifarn, options: {{file: {labels}, key: worst}}}}"
    assert main(["run", str(write_suite(npz_suite(data, noise)))]) == 2
    one_line(capsys, needle)


SUITE_CASES = {
    "no methods": ("methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]", "methods: []",
                   "at least one entry in methods"),
    "bool seed": ("device: cpu", "device: cpu\nseeds: [true]", "seeds[0]: Input should be a valid integer"),
    "string seed": ("device: cpu", "device: cpu\nseeds: ['3']", "seeds[0]: Input should be a valid integer"),
    "negative seed": ("device: cpu", "device: cpu\nseeds: [-1]", "greater than or equal to 0"),
    "seed twice": ("device: cpu", "device: cpu\nseeds: [0, 0]", "seed 0 is listed twice"),
    "same method twice": ("methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]",
                          "methods: [{name: ce, hparams: {network: mlp, epochs: 1}},"
                          " {name: ce, hparams: {epochs: 1, network: mlp}}]",
                          "methods[1] (ce) resolves to the same recipe as methods[0]"),
    "unsafe name": ("name: bad", "name: ../../x", "cannot name a results folder"),
    "no ratios": ("ratios: [0.2]", "ratios: []", "noise[0].ratios: ratios is empty"),
    "negative checkpoint_every": ("engine: {progress: false}",
                                  "engine: {progress: false, checkpoint_every: -1}",
                                  "engine.checkpoint_every: Input should be greater than or equal to 0"),
    "eval batch of 0": ("engine: {progress: false}", "engine: {progress: false, eval_batch_size: 0}",
                        "engine.eval_batch_size: Input should be greater than or equal to 1"),
    "another code base's name": ("{network: mlp, epochs: 1}",
                                 "{network: mlp, epochs: 1, learning_rate: 0.1}",
                                 "unknown key 'learning_rate' (did you mean 'lr'?)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SUITE_CASES))
def test_suites_are_validated_strictly(case, write_suite, tmp_path, capsys):
    old, new, needle = SUITE_CASES[case]
    assert old in BASE
    for argv in (["--dry-run"], []):
        assert main(["run", str(write_suite(BASE.replace(old, new))), *argv]) == 2
        one_line(capsys, needle)
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "x").exists()


def test_two_entries_of_one_method_with_other_hparams_are_two_recipes(write_suite, capsys):
    text = BASE.replace(
        "methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]",
        "methods: [{name: ce, hparams: {network: mlp, epochs: 1}},"
        " {name: ce, hparams: {network: mlp, epochs: 1, lr: 0.1}}]",
    )
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 0
    assert "2 runs (0 done)" in capsys.readouterr().out


def test_moving_data_and_label_files_keeps_every_run(write_suite, tmp_path, capsys):
    data = cifar_npz(tmp_path / "sub.npz")
    labels = cifarn_file(tmp_path / "c10n.npz")
    noise = f"{{model: cifarn, options: {{file: {labels}, key: worst}}}}"
    assert main(["run", str(write_suite(npz_suite(data, noise)))]) == 0
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(data, moved / "sub.npz")
    shutil.move(labels, moved / "c10n.npz")
    capsys.readouterr()
    text = npz_suite(moved / "sub.npz", noise.replace(str(labels), str(moved / "c10n.npz")))
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 0
    assert "1 runs (1 done)" in capsys.readouterr().out
    cifarn_file(moved / "c10n.npz", worse_label=(np.arange(40) + 5) % 10)  # new bytes, same name
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 0
    assert "1 runs (0 done)" in capsys.readouterr().out


def test_an_npz_dataset_is_labelled_by_its_stem_and_labels_never_clash(
    write_suite, tmp_path, capsys
):
    one = cifar_npz(tmp_path / "a" / "subset.npz") if (tmp_path / "a").mkdir() is None else None
    assert main(["run", str(write_suite(npz_suite(one)))]) == 0
    capsys.readouterr()  # 4 images a class: a chance majority flip may warn; not this test's line
    board = (tmp_path / "reports" / "bad" / "leaderboard.md").read_text()
    assert "## subset (family=cifar10) · sym" in board and str(tmp_path) not in board
    plots = {p.name for p in (tmp_path / "reports" / "bad" / "plots").iterdir()}
    assert plots and all(name.endswith("_subset-family=cifar10_sym.png") for name in plots), plots
    (tmp_path / "b").mkdir()
    other = cifar_npz(tmp_path / "b" / "subset.npz", n=60)
    two = npz_suite(one).replace(
        "datasets: [", f"datasets: [{{name: npz, options: {{path: {other}, family: cifar10}}}}, "
    )
    assert main(["run", str(write_suite(two)), "--dry-run"]) == 2
    one_line(capsys, "datasets[1] and datasets[0] are different data but both report as 'subset'")
    labelled = two.replace("family: cifar10}}, ", "family: cifar10}, label: subset60}, ", 1)
    assert main(["run", str(write_suite(labelled)), "--dry-run"]) == 0


def test_set_names_a_missing_entry_with_a_hint(write_suite, capsys):
    code = main(["run", str(write_suite(BASE)), "--set", "methods.cee.hparams.epochs=3"])
    assert code == 2
    line = one_line(capsys, "no entry named 'cee' in methods (did you mean 'ce'?)")
    assert "its entries: ce" in line
    assert (
        main(["run", str(write_suite(BASE)), "--dry-run", "--set", "noise.sym.ratios=[0.5]"]) == 0
    )
    assert "sym 0.5" in capsys.readouterr().out


def test_ssr_command_hints_name_its_own_flag(tmp_path, capsys):
    argv = ["ssr", "--dataset_path", str(tmp_path / "missing"), "--set", f"results_dir={tmp_path}"]
    assert main(argv) == 2
    line = one_line(capsys, "--dataset_path PATH")
    assert "--set dataset.root" not in line


@pytest.mark.slow
def test_dry_run_into_a_closed_pipe_is_quiet(write_suite):
    many = BASE.replace("ratios: [0.2]", "ratios: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]").replace(
        "device: cpu", "device: cpu\nseeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    )
    path = write_suite(many)
    script = f"{sys.executable} {ROOT / 'run_bench.py'} run {path} --dry-run | head -n 1"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipe" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--epochs", "0"], "--epochs 0: time at least 1 epoch"),
     (["--concurrency", "a,b"], "--concurrency 'a,b': give counts >= 1")],
)  # fmt: skip
def test_perf_checks_its_arguments_before_timing(argv, needle, write_suite, tmp_path, capsys):
    out = tmp_path / "perf"
    assert main(["perf", str(write_suite(BASE)), "--out", str(out), *argv]) == 2
    one_line(capsys, needle)
    assert not out.exists()


def test_perf_keeps_every_table_and_says_when_an_epoch_includes_warm_up(write_suite, tmp_path):
    out = tmp_path / "perf"
    for _ in range(2):
        assert main(["perf", str(write_suite(BASE)), "--out", str(out), "--epochs", "1"]) == 0
    tables = sorted(out.glob("perf_bad-*.md"))
    assert len(tables) == 2
    assert "one epoch, warm-up included" in tables[0].read_text()


def test_a_data_file_replaced_under_its_name_never_shares_a_cell(write_suite, tmp_path):
    data = cifar_npz(tmp_path / "subset.npz")
    assert main(["run", str(write_suite(npz_suite(data)))]) == 0
    cifar_npz(data, n=60)  # other bytes, same path and label: other runs, and another table
    assert main(["run", str(write_suite(npz_suite(data)))]) == 0
    board = (tmp_path / "reports" / "bad" / "leaderboard.md").read_text()
    groups = re.findall(r"^## subset \(family=cifar10\) · sym · data [0-9a-f]{8}$", board, re.M)
    assert len(groups) == 2 and groups[0] != groups[1]


def test_perf_refuses_a_method_it_cannot_build_before_timing(write_suite, tmp_path, capsys):
    out = tmp_path / "perf"
    suite = write_suite(BASE.replace("{name: ce, hparams: {network: mlp, epochs: 1}}",
                                     "{name: ssr, hparams: {network: mlp, epochs: 1, k: 500}}"))  # fmt: skip
    assert main(["perf", str(suite), "--out", str(out)]) == 2
    one_line(capsys, "k=500 neighbours but an epoch trains on at most 64 samples")
    assert not out.exists()


def test_records_of_a_newer_nlbench_stop_the_sweep_and_the_report_untouched(
    write_suite, tmp_path, capsys, monkeypatch
):
    """A record of schema version 3 used to be called 'unreadable', moved aside and retrained."""
    path = write_suite(BASE)
    assert main(["run", str(path)]) == 0
    results = tmp_path / "results" / "bad"
    (record,) = results.glob("*.json")
    raw = json.loads(record.read_text())
    record.write_text(json.dumps(raw | {"schema_version": 3, "a_new_field": 1}))
    before = {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}
    capsys.readouterr()
    calls = []
    monkeypatch.setattr(Engine, "fit", lambda *a, **k: calls.append(a) or 1 / 0)
    for argv in (["run", str(path)], ["report", str(results)]):
        assert main(argv) == 2
        line = one_line(capsys, f"1 record(s) (e.g. {record.name}, schema version 3, this ")
        assert "were written by a newer nlbench" in line and "nothing was moved" in line
    assert {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()} == before
    assert calls == []
