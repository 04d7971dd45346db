"""Each bad input gets one clear line, a non-zero exit, and leaves stored records untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
name: errs
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]
engine: {progress: false}
"""

CASES = {
    "unknown top-level key": (GOOD + "epoch: 3\n", "unknown key 'epoch'"),
    "unknown method": (GOOD.replace("name: ce", "name: sssr"), "unknown method 'sssr'"),
    "ratio 1.7": (GOOD.replace("[0.2]", "[1.7]"), "noise ratio 1.7"),
    "asym without a map": (GOOD.replace("model: sym", "model: asym"), "asym"),
    "missing cifar folder": (
        GOOD.replace(
            "{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}",
            "{name: cifar10, root: /nonexistent/cifar}",
        ),
        "/nonexistent/cifar",
    ),
    "yaml syntax": (GOOD + "seeds: [0\n", "YAML syntax error"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line(case, write_suite, tmp_path, capsys):
    results = tmp_path / "results" / "errs"
    results.mkdir(parents=True)
    keep = results / "0123456789ab.json"
    keep.write_text("{}")
    text, needle = CASES[case]
    code = main(["run", str(write_suite(text)), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert [p.name for p in results.iterdir()] == ["0123456789ab.json"]
    assert keep.read_text() == "{}"


@pytest.mark.slow
def test_no_traceback_through_the_real_entry_point(write_suite):
    path = write_suite(GOOD.replace("name: ce", "name: nope"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "run", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown method 'nope'" in proc.stderr


def test_method_configuration_error_stops_before_training(write_suite, tmp_path, capsys):
    """cnn9 cannot take 8x8 images: one line before any run trains, nothing written."""
    text = GOOD.replace(
        "methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]",
        "methods: [{name: ce, hparams: {network: mlp, epochs: 1}}, "
        "{name: coteaching, hparams: {network: cnn9, epochs: 1}}]",
    )
    code = main(["run", str(write_suite(text)), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cnn9" in err[0], err
    assert not (tmp_path / "results" / "errs").exists()
