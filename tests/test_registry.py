"""The method registry: built-ins are discovered, third parties register through entry points."""

from __future__ import annotations

import torch

import methods.base as base
from harness.cli import main
from harness.plan import EpochPlan, Stream


class _EntryPoint:
    """Stands in for an installed package's `nlbench.methods` entry point; like a real one, its
    module is imported (and the method registered) once, however often it is loaded."""

    loaded: type | None = None

    def load(self):
        if _EntryPoint.loaded is None:
            _EntryPoint.loaded = self._define()
        return _EntryPoint.loaded

    @staticmethod
    def _define():
        @base.register("plugin_ce")
        class Plugin(base.Method):
            """A third-party method registered from outside the methods package."""

            class HParams(base.MethodHParams):
                epochs: int = 1
                network: str = "mlp"

            def __init__(self, ctx, hp):
                super().__init__(ctx, hp)
                self.net = ctx.network(hp.network)
                self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

            def begin_epoch(self, epoch):
                return EpochPlan({"all": Stream(self.ctx.train_indices, self.ctx.noisy_labels)})

            def train_step(self, batch):
                loss = torch.nn.functional.cross_entropy(self.net(batch["all"].views[0]),
                                                         batch["all"].labels)
                self.step(loss, self.opt)
                return {"loss": loss.detach()}

            def predict(self, images):
                return self.net(images)

        return Plugin


def test_builtins_are_discovered():
    assert {"ce", "ssr", "coteaching", "coteaching_plus", "jocor"} <= set(base.available())


def test_entry_point_method_runs_in_a_suite(monkeypatch, write_suite, tmp_path, capsys):
    monkeypatch.setattr(base, "entry_points",
                        lambda group: [_EntryPoint()] if group == "nlbench.methods" else [])
    suite = write_suite("""
name: plug
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [plugin_ce]
engine: {progress: false}
""")
    try:
        assert main(["run", str(suite), "--device", "cpu"]) == 0
        assert "plugin_ce" in (tmp_path / "reports" / "plug" / "leaderboard.md").read_text()
        main(["list"])
        assert "A third-party method registered" in capsys.readouterr().out
    finally:
        base._REGISTRY.pop("plugin_ce", None)
        _EntryPoint.loaded = None


def test_ssr_official_command_runs_through_the_suite_machinery(tmp_path, capsys):
    code = main(["ssr", "--theta_r", "0.8", "--noise_mode", "sym", "--noise_ratio", "0.9",
                 "--dataset", "cifar100", "--dataset_path", str(tmp_path / "nowhere"),
                 "--dry-run", "--set", f"results_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 0 and "ssr | cifar100 | sym 0.9 | seed 3047" in out and "1 runs (0 done)" in out
    assert main(["ssr", "--dataset_path", str(tmp_path / "nowhere"),
                 "--set", f"results_dir={tmp_path}"]) == 2
    assert "nowhere" in capsys.readouterr().err
