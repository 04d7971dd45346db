"""The method registry: built-ins are discovered; third-party plugins are installed as real
distributions (a dist-info folder with entry points on the path) and run, or fail politely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlbench.cli import main
from nlbench.methods.api import available

ROOT = Path(__file__).resolve().parents[1]

GOOD = '''
import torch.nn.functional as F
from nlbench.methods.api import SingleNetwork, register

@register("plugin_ce")
class PluginCE(SingleNetwork):
    """A third-party method registered from outside the methods package."""

    def loss(self, logits, labels, indices):
        return F.cross_entropy(logits, labels)
'''

PLUGINS = {
    "plugin_ce": ("goodplug", GOOD),
    "broken": ("brokenplug", "import a_module_that_does_not_exist\n"),
    "ce": ("clashplug", GOOD.replace('"plugin_ce"', '"ce"')),
    "misnamed": ("misnamedplug", GOOD.replace('"plugin_ce"', '"other_name"')),
}


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """A folder that, on PYTHONPATH, is an installed distribution with four method plugins."""
    site = tmp_path_factory.mktemp("site")
    info = site / "nlbench_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nlbench-test-plugins\nVersion: 0.1\n"
    )
    lines = ["[nlbench.methods]"] + [f"{ep} = {mod}" for ep, (mod, _) in PLUGINS.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in PLUGINS.values():
        (site / f"{module}.py").write_text(source)
    return site


def _nlbench(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
        timeout=300,
    )


def test_builtins_are_discovered():
    assert {"ce", "gce", "ssr", "coteaching", "coteaching_plus", "jocor"} <= set(available())


@pytest.mark.slow
def test_bad_plugins_cost_one_line_each_and_good_ones_list(plugin_site):
    done = _nlbench(plugin_site, "list")
    assert done.returncode == 0, done.stderr
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 3, done.stderr
    broken, clash, misnamed = (
        next(w for w in warnings if f"'{n}'" in w) for n in ("broken", "ce", "misnamed")
    )
    assert "ModuleNotFoundError" in broken and "a_module_that_does_not_exist" in broken
    assert "already registered by nlbench.methods.ce.CrossEntropy" in clash
    assert "registers other_name" in misnamed and "name the entry point" in misnamed
    methods = done.stdout.split("datasets:")[0]
    for name in ("ce", "gce", "ssr", "jocor", "plugin_ce"):
        assert f"\n  {name} " in methods
    assert "other_name" not in methods
    assert "A third-party method registered" in methods


@pytest.mark.slow
def test_plugin_method_trains_in_a_suite_beside_builtins(plugin_site, tmp_path):
    suite = tmp_path / "plug.yaml"
    suite.write_text(f"""
name: plug
datasets: [{{name: synthetic, options: {{n_train: 64, n_test: 32, num_classes: 4, size: 8}}}}]
noise: [{{model: sym, ratios: [0.2]}}]
methods:
  - {{name: plugin_ce, hparams: {{epochs: 1, network: mlp}}}}
  - {{name: ce, hparams: {{epochs: 1, network: mlp}}}}
engine: {{progress: false}}
device: cpu
results_dir: {tmp_path / "results"}
reports_dir: {tmp_path / "reports"}
""")
    done = _nlbench(plugin_site, "run", str(suite))
    assert done.returncode == 0, done.stderr
    board = (tmp_path / "reports" / "plug" / "leaderboard.md").read_text()
    assert "| plugin_ce" in board and "| ce " in board


def test_ssr_official_command_runs_through_the_suite_machinery(tmp_path, capsys):
    code = main(
        ["ssr", "--theta_r", "0.8", "--noise_mode", "sym", "--noise_ratio", "0.9", "--dataset",
         "cifar100", "--dataset_path", str(tmp_path / "nowhere"), "--dry-run", "--set",
         f"results_dir={tmp_path}"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "ssr | cifar100 | sym 0.9 | seed 3047" in out and "1 runs (0 done)" in out
    missing = [
        "ssr",
        "--dataset_path",
        str(tmp_path / "nowhere"),
        "--set",
        f"results_dir={tmp_path}",
    ]
    assert main(missing) == 2
    assert "nowhere" in capsys.readouterr().err
