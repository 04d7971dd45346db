"""The method API: state found in lists and dicts, the loss hook (GCE), the README's example
method as written, and independent random streams per run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlbench.cli import main
from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoiseFacts, apply_noise
from nlbench.engine import Engine, EngineOptions
from nlbench.engine.checkpoint import load_checkpoint, save_checkpoint
from nlbench.engine.loop import run_streams
from nlbench.engine.passes import train_epoch
from nlbench.methods.api import EpochPlan, Method, MethodHParams, Stream
from nlbench.methods.api.registry import _REGISTRY
from nlbench.methods.gce import GCE

ROOT = Path(__file__).resolve().parents[1]


def tiny_engine() -> Engine:
    data = load_dataset("synthetic", n_train=64, n_test=32, num_classes=4, size=8)
    return Engine(data, apply_noise("sym", data, 0.2, seed=0), 0, torch.device("cpu"),
                  EngineOptions(progress=False), noise=NoiseFacts(0.18, False))  # fmt: skip


class NetsInContainers(Method):
    """Two networks in a list, optimisers in a dict, a scheduler in a list: nothing declared."""

    class HParams(MethodHParams):
        epochs: int = 2
        network: str = "mlp"

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.nets = [self.build_network(), self.build_network()]
        self.optimizers = {"main": torch.optim.SGD(self.nets[1].parameters(), lr=1.0)}
        self.schedules = [torch.optim.lr_scheduler.StepLR(self.optimizers["main"], 1, 0.5)]
        self.modes_seen: list[tuple[bool, bool]] = []

    def begin_epoch(self, epoch):
        return EpochPlan({"all": Stream(self.ctx.train_indices, self.ctx.noisy_labels)})

    def train_step(self, batch):
        with self.autocast():
            loss = F.cross_entropy(self.nets[1](batch["all"].views[0]), batch["all"].labels)
        self.step(loss, self.optimizers["main"])
        return {"loss": loss.detach()}

    def predict(self, images):
        self.modes_seen.append((self.nets[0].training, self.nets[1].training))
        return self.nets[1](images)


def test_networks_in_a_list_are_checkpointed_evaluated_and_their_scheduler_stepped(tmp_path):
    engine = tiny_engine()
    hp = NetsInContainers.HParams()
    method = NetsInContainers(engine.ctx, hp)
    assert set(method.state_dict()) == {"nets.0", "nets.1", "optimizers.main", "schedules.0",
                                        "_extra"}  # fmt: skip
    train_epoch(
        method,
        EpochPlan(method.begin_epoch(0).streams, steps=2),
        engine.views,
        engine.sample_gen,
        engine.device,
    )
    engine.evaluate(method)
    assert method.modes_seen and set(method.modes_seen) == {(False, False)}
    assert all(net.training for net in method.nets)  # back to training after evaluation
    method.end_epoch(0)
    assert method.optimizers["main"].param_groups[0]["lr"] == 0.5
    save_checkpoint(tmp_path / "ckpt.pt", method, 0, [], engine.streams())
    fresh = NetsInContainers(tiny_engine().ctx, hp)
    assert not torch.equal(fresh.nets[1].classifier.weight, method.nets[1].classifier.weight)
    load_checkpoint(tmp_path / "ckpt.pt", fresh, engine.streams())
    for mine, theirs in zip(method.nets, fresh.nets):
        for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()):
            assert torch.equal(a, b)
    assert fresh.schedules[0].last_epoch == 1
    assert fresh.optimizers["main"].param_groups[0]["lr"] == 0.5


def test_gce_loss_matches_the_formula():
    """L_q = (1 - p_y^q) / q. With softmax probabilities (0.5, 0.25, 0.25) and q = 0.7:
    label 0: (1 - 0.5^0.7) / 0.7 = 0.549183...; label 1: (1 - 0.25^0.7) / 0.7 = 0.887244...;
    the batch loss is their mean, 0.718213..."""
    method = GCE.__new__(GCE)
    method.hp = GCE.HParams(q=0.7)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])) + 3.0  # shift-free
    loss = method.loss(logits, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx((0.5491826 + 0.8872443) / 2, abs=1e-6)
    assert (1 - 0.5**0.7) / 0.7 == pytest.approx(0.5491826, abs=1e-7)
    method.hp = GCE.HParams(q=1.0)  # MAE: 1 - p_y
    assert method.loss(logits, torch.tensor([1, 1]), None).item() == pytest.approx(0.75)
    method.hp = GCE.HParams(q=1e-4)  # q -> 0 is cross-entropy
    ce = F.cross_entropy(logits, torch.tensor([0, 1])).item()
    assert method.loss(logits, torch.tensor([0, 1]), None).item() == pytest.approx(ce, rel=1e-3)
    assert ce == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_gce_defaults_are_the_reference_recipe():
    hp = GCE.HParams()
    assert (hp.q, hp.network, hp.lr, hp.weight_decay, hp.epochs) == (
        0.7,
        "resnet34",
        0.01,
        1e-4,
        120,
    )
    assert (hp.schedule, hp.milestones, hp.batch_size, hp.view) == (
        "multistep",
        (40, 80),
        128,
        "weak",
    )


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Adding a method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_method_example_runs_as_written(write_suite, tmp_path):
    code = readme_example()
    assert '@register("mine")' in code
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
        suite = write_suite("""
name: readme
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [{name: mine, hparams: {epochs: 2, network: mlp}}]
engine: {progress: false}
device: cpu
""")
        assert main(["run", str(suite)]) == 0
        board = (tmp_path / "reports" / "readme" / "leaderboard.md").read_text()
        assert "| mine" in board
    finally:
        _REGISTRY.remove("mine")


def test_run_streams_are_independent_across_seeds():
    """seed + i seeding made seed 0's view stream seed 1's sampling stream; spawned ones do not."""
    draws = {}
    for seed in (0, 1):
        sample, view, method, rng = run_streams(seed)
        draws[seed] = [torch.randint(1 << 30, (4,), generator=g).tolist()
                       for g in (sample, view, method)] + [rng.integers(1 << 30, size=4).tolist()]  # fmt: skip
    flat = [tuple(d) for seed in (0, 1) for d in draws[seed]]
    assert len(set(flat)) == 8
    again = run_streams(0)
    assert torch.randint(1 << 30, (4,), generator=again[1]).tolist() == draws[0][1]
    assert isinstance(again[3], np.random.Generator)


def test_a_single_network_method_without_a_loss_or_a_step_is_refused_where_it_is_defined():
    from nlbench.methods.api import SingleNetwork

    with pytest.raises(TypeError, match="needs a loss"):

        class Lossless(SingleNetwork):
            pass


class TwoTaggedPasses(Method):
    """A two-network, two-pass method written on the API alone: each pass is tagged with the
    network it trains, the second has two streams and names the one that sets its length."""

    class HParams(MethodHParams):
        epochs: int = 2
        network: str = "mlp"

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.nets = [self.build_network(), self.build_network()]
        self.optimizers = [torch.optim.SGD(net.parameters(), lr=0.1) for net in self.nets]
        self.seen: list[tuple[int, tuple[str, ...], int]] = []

    def begin_epoch(self, epoch):
        ids, labels = self.ctx.train_indices, self.ctx.noisy_labels
        first = EpochPlan({"all": Stream(ids, labels, batch_size=16)}, phase="warmup", tag=0)
        first.followed_by = EpochPlan(
            {
                "few": Stream(ids[:8], labels, batch_size=4),
                "many": Stream(ids, labels, batch_size=8),
            },
            tag=1,
            length_from="many",
        )
        return first

    def train_step(self, batch, tag):
        part = next(iter(batch.values()))
        self.seen.append((tag, tuple(batch), len(part.indices)))
        loss = F.cross_entropy(self.nets[tag](part.views[0]), part.labels)
        self.step(loss, self.optimizers[tag])
        return {f"loss_{tag}": loss.detach()}

    def predict(self, images):
        return self.nets[0](images)


def test_passes_hand_their_tag_to_train_step_and_the_named_stream_sets_the_length():
    engine = tiny_engine()
    method = TwoTaggedPasses(engine.ctx, TwoTaggedPasses.HParams())
    losses, _ = train_epoch(
        method, method.begin_epoch(0), engine.views, engine.sample_gen, engine.device
    )
    # pass 0: 64 // 16 = 4 steps of "all"; pass 1: 64 // 8 = 8 steps, set by "many", not "few"
    assert [(tag, streams) for tag, streams, _ in method.seen] == [(0, ("all",))] * 4 + [
        (1, ("few", "many"))
    ] * 8
    assert set(losses) == {"loss_0", "loss_1"}
    fit = tiny_engine().fit(TwoTaggedPasses, TwoTaggedPasses.HParams())
    assert [e.pass_phases for e in fit.epochs] == [["warmup", "train"]] * 2


def test_a_plan_of_several_streams_names_the_one_that_sets_its_length():
    ids, labels = torch.arange(8), torch.zeros(8, dtype=torch.long)
    streams = {"a": Stream(ids, labels), "b": Stream(ids, labels)}
    with pytest.raises(ValueError, match="length_from"):
        EpochPlan(streams)
    with pytest.raises(ValueError, match="names no stream"):
        EpochPlan(streams, length_from="c")
    assert EpochPlan(streams, steps=3).steps == 3
