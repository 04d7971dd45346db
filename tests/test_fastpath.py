"""The fast path computes what the plain path computes (CPU checks; the GPU timings live in
`run_bench.py perf`): same losses on a fixed batch within bf16 tolerance, identical results with
channels_last, and the perf command's table as a smoke test (no timing asserts)."""

from __future__ import annotations

import pytest
import torch

from nlbench.cli import main
from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoiseFacts, apply_noise
from nlbench.engine import Engine, EngineOptions
from nlbench.engine.passes import build_views, train_epoch
from nlbench.methods.api import get as get_method
from nlbench.methods.api.plan import EpochPlan

SMALL = {
    "ce": {"network_options": {"width": 8}, "batch_size": 16},
    "ssr": {"network_options": {"width": 8}, "batch_size": 16, "k": 5},
    "coteaching": {"network_options": {"width": 0.125}, "batch_size": 16},
}


def first_step_losses(method: str, amp: bool, channels_last: bool) -> dict[str, float]:
    """One training step of `method` from a fixed seed, on CIFAR-shaped synthetic data."""
    data = load_dataset(
        "synthetic", n_train=64, n_test=16, num_classes=4, size=32, channels=3, augment="crop_flip"
    )
    noisy = apply_noise("sym", data, 0.5, seed=0)
    engine = Engine(
        data,
        noisy,
        0,
        torch.device("cpu"),
        EngineOptions(progress=False),
        noise=NoiseFacts(0.45, False),
    )
    engine.switches["channels_last"] = channels_last
    engine.views.channels_last = channels_last
    engine.ctx.amp_dtype = torch.bfloat16 if amp else None
    cls = get_method(method)
    network = {"ce": "preact_resnet18", "ssr": "preact_resnet18", "coteaching": "cnn9"}[method]
    hp = cls.HParams.model_validate({"epochs": 1, "network": network, **SMALL[method]})
    instance = cls(engine.ctx, hp)
    dtypes: set[torch.dtype] = set()
    for net in instance.parts(torch.nn.Module).values():
        net.register_forward_hook(lambda module, inputs, out: dtypes.add(out.dtype))
    plan = instance.begin_epoch(0)  # SSR's feature pass, relabelling and selection run here
    planned = set(dtypes)
    losses, _ = train_epoch(
        instance, EpochPlan(plan.streams, steps=1), engine.views, engine.sample_gen, engine.device
    )
    expected = {torch.bfloat16} if amp else {torch.float32}
    assert dtypes - {torch.float32} <= expected and dtypes & expected, dtypes
    if method == "ssr":  # the feature pass ran at the training precision too
        assert planned & expected, planned
    return losses


@pytest.mark.parametrize("method", sorted(SMALL))
def test_bf16_autocast_gives_the_same_losses_within_bf16_tolerance(method):
    plain = first_step_losses(method, amp=False, channels_last=False)
    fast = first_step_losses(method, amp=True, channels_last=False)
    assert plain.keys() == fast.keys()
    for key in plain:
        assert fast[key] == pytest.approx(plain[key], rel=0.05, abs=0.02), key


@pytest.mark.parametrize("method", sorted(SMALL))
def test_channels_last_gives_the_same_losses(method):
    plain = first_step_losses(method, amp=False, channels_last=False)
    fast = first_step_losses(method, amp=False, channels_last=True)
    for key in plain:
        assert fast[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-5), key


@pytest.mark.slow
def test_perf_command_prints_a_table_for_every_method_and_path(write_suite, tmp_path, capsys):
    suite = write_suite("""
name: perfsmoke
datasets: [{name: synthetic, options: {n_train: 64, n_test: 16, num_classes: 4, size: 32,
                                       channels: 3, augment: crop_flip}}]
noise: [{model: sym, ratios: [0.5]}]
methods:
  - {name: ce, hparams: {network_options: {width: 8}, batch_size: 32}}
  - {name: ssr, hparams: {network_options: {width: 8}, batch_size: 32, k: 5}}
  - {name: coteaching, hparams: {network_options: {width: 0.125}, batch_size: 32}}
""")
    out = tmp_path / "perf"
    assert (
        main(
            [
                "perf",
                str(suite),
                "--epochs",
                "2",
                "--compare",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--concurrency",
                "1,2",
            ]
        )
        == 0
    )
    (csv,) = out.glob("perf_perfsmoke-*.csv")
    table = csv.read_text().splitlines()
    assert table[0].startswith("method,path,epoch_s,train_s,selection_s,eval_s,images_per_s")
    rows = [line.split(",")[:2] for line in table[1:]]
    assert sorted(rows) == sorted(
        [[m, p] for m in ("ce", "ssr", "coteaching") for p in ("plain", "fast")]
    )
    assert "speedup_vs_plain" in table[0]
    assert "perf of suite 'perfsmoke' on cpu" in csv.with_suffix(".md").read_text()
    (shared_csv,) = out.glob("concurrency_perf_perfsmoke-*.csv")
    shared = shared_csv.read_text().splitlines()
    assert [line.split(",")[1] for line in shared[1:]] == ["1", "2"]
    assert all(float(line.split(",")[3]) > 0 for line in shared[1:])


def test_views_of_one_kind_are_built_in_one_call_and_differ_per_image(monkeypatch):
    """SSR's three strong views a step come from one augmentation call, each image its own."""
    data = load_dataset(
        "synthetic", n_train=64, n_test=16, num_classes=4, size=32, channels=3, augment="crop_flip"
    )
    engine = Engine(
        data,
        apply_noise("sym", data, 0.5, seed=0),
        0,
        torch.device("cpu"),
        EngineOptions(progress=False),
        noise=NoiseFacts(0.45, False),
    )
    cls = get_method("ssr")
    method = cls(
        engine.ctx,
        cls.HParams.model_validate({"epochs": 1, "network": "preact_resnet18", **SMALL["ssr"]}),
    )
    plan = method.begin_epoch(0)
    calls = []
    make = engine.views.make
    monkeypatch.setattr(
        engine.views,
        "make",
        lambda images, view: calls.append((view, len(images))) or make(images, view),
    )
    images = {name: engine.views.train.images[torch.arange(16)] for name in plan.streams}
    views = build_views(plan, engine.views, images)
    assert sorted(calls) == sorted([("strong", 16 * 3), ("weak", 16)])
    first, second = views["labelled"]
    assert first.shape == second.shape == (16, 3, 32, 32)
    assert not torch.equal(first, second)  # two draws of the same images


def test_perf_starts_its_runs_as_a_sweep_does_with_the_suites_cpu_threads(
    write_suite, tmp_path, monkeypatch
):
    """perf timed on whatever threads its process had, not the suite's `engine.cpu_threads`."""
    suite = write_suite("""
name: perfthreads
datasets: [{name: synthetic, options: {n_train: 64, n_test: 16, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.5]}]
methods: [{name: ce, hparams: {network: mlp, batch_size: 32}}]
engine: {cpu_threads: 2}
""")
    seen = []
    real_fit = Engine.fit

    def fit(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "fit", fit)
    before = torch.get_num_threads()
    try:
        argv = ["perf", str(suite), "--epochs", "1", "--device", "cpu", "--out", str(tmp_path)]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(before)
    assert seen == [2]
