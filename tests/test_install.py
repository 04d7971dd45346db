"""A non-editable install works on its own: the wheel carries every package and the shipped suites,
and `nlbench` with no arguments finds quick.yaml as package data (no checkout needed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and starts a fresh interpreter: about 5 s

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import nlbench
assert nlbench.__file__.startswith(sys.argv[1]), nlbench.__file__
from nlbench.cli import main
code = main(["list"]) or main(["run", "quick", "--dry-run", "--set", "results_dir=" + sys.argv[2]])
sys.exit(code)
"""


def test_wheel_holds_the_namespace_and_suites_and_runs_outside_the_checkout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("nlbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "nlbench/cli.py",
        "nlbench/engine/loop.py",
        "nlbench/methods/ssr.py",
        "nlbench/methods/api/method.py",
        "nlbench/data/noise.py",
        "nlbench/benchmarks/quick.yaml",
        "nlbench/benchmarks/ssr_cifar10_paper.yaml",
    ):
        assert name in names, name
    assert not any(n.split("/")[0] in ("methods", "data", "harness", "benchmarks") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(site), str(tmp_path / "results")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ssr " in done.stdout and "quick" in done.stdout
    assert "runs (0 done)" in done.stdout
