"""Honest model selection: the noisy validation split, what never sees it, the search's draws,
the leaderboard's selection rules, and a search that survives kill -9."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoiseFacts, apply_noise
from nlbench.data.splits import noisy_validation_split
from nlbench.engine import Engine, EngineOptions
from nlbench.engine.passes import train_epoch
from nlbench.errors import ConfigError
from nlbench.expansion import expand
from nlbench.methods.api import EpochPlan, Method, MethodHParams, Stream
from nlbench.suite_loading import suite_from_dict


def test_the_split_is_a_pure_stratified_function_of_labels_fraction_and_seed():
    labels = np.repeat(np.arange(4), [50, 30, 20, 1])
    held = noisy_validation_split(labels, 4, 0.1, seed=3)
    assert np.array_equal(held, noisy_validation_split(labels.copy(), 4, 0.1, seed=3))
    assert not np.array_equal(held, noisy_validation_split(labels, 4, 0.1, seed=4))
    assert np.bincount(labels[held], minlength=4).tolist() == [5, 3, 2, 0]  # a lone sample stays
    assert np.all(np.diff(held) > 0)


class Spy(Method):
    """Records every sample the method could ever see: batches, feature passes, its context."""

    class HParams(MethodHParams):
        epochs: int = 2
        network: str = "mlp"

    def __init__(self, ctx, hp):
        super().__init__(ctx, hp)
        self.net = self.build_network()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01)
        self.images: list[torch.Tensor] = []

    def begin_epoch(self, epoch):
        # what SSR does: a feature pass over "every training image" and a neighbour index on it
        self.images.append(self.ctx.features(lambda x: x.flatten(1), view="none"))
        self.ctx.neighbour_index(self.images[-1])
        return EpochPlan({"all": Stream(self.ctx.train_indices, self.ctx.noisy_labels, ("none",),
                                        batch_size=16)})  # fmt: skip

    def train_step(self, batch):
        self.images.append(batch["all"].views[0].flatten(1))
        loss = F.cross_entropy(self.net(batch["all"].views[0]), batch["all"].labels)
        self.step(loss, self.opt)
        return {"loss": loss.detach()}

    def predict(self, images):
        return self.net(images)


def test_held_out_samples_never_reach_a_train_step_a_feature_pass_or_the_neighbour_index():
    data = load_dataset("synthetic", n_train=200, n_test=40, num_classes=4, size=8)
    noisy = apply_noise("sym", data, 0.3, seed=0)
    held = noisy_validation_split(noisy.labels, 4, 0.2, seed=0)
    engine = Engine(data, noisy, 0, torch.device("cpu"), EngineOptions(progress=False),
                    noise=NoiseFacts(0.27, False), validation=held)  # fmt: skip
    assert engine.ctx.num_train == 200 - len(held) and len(held) == 40
    built = []
    original = engine.ctx.neighbour_index
    engine.ctx.neighbour_index = lambda feats: built.append(len(feats)) or original(feats)
    method = Spy(engine.ctx, Spy.HParams())
    for epoch in range(2):
        train_epoch(
            method, method.begin_epoch(epoch), engine.views, engine.sample_gen, engine.device
        )
    seen = torch.cat(method.images)
    as_views = engine.views.make(torch.from_numpy(data.x_train), "none").flatten(1)
    distances = torch.cdist(as_views[torch.from_numpy(held)], seen)
    assert distances.min() > 1e-3  # no held-out image among everything the method saw
    assert built == [200 - len(held)] * 2
    kept = np.setdiff1d(np.arange(200), held)
    assert torch.equal(engine.ctx.noisy_labels, torch.from_numpy(noisy.labels[kept]))
    fit = engine.fit(Spy, Spy.HParams())
    assert all(e.noisy_val_acc is not None for e in fit.epochs)


def suite(**extra):
    raw = {"name": "s", "datasets": ["digits"], "noise": [{"model": "sym", "ratios": [0.5]}],
           "seeds": [0, 1], "methods": [{"name": "ce"}, {"name": "ssr"}], **extra}  # fmt: skip
    return suite_from_dict(raw, "suite")


def test_a_search_runs_the_defaults_as_trial_0_and_draws_the_rest_reproducibly():
    specs = expand(suite(selection={"fraction": 0.1}, search={"trials": 4, "seed": 7}))
    assert len(specs) == 2 * 4 * 2
    ce = [s for s in specs if s.method.name == "ce" and s.seed == 0]
    assert [s.method.trial for s in ce] == [0, 1, 2, 3]
    assert ce[0].method.hparams["lr"] == 0.02  # the defaults
    drawn = {s.method.hparams["lr"] for s in ce[1:]}
    assert len(drawn) == 3 and all(0.005 <= lr <= 0.2 for lr in drawn)
    again = expand(suite(selection={"fraction": 0.1}, search={"trials": 4, "seed": 7}))
    assert [s.run_id for s in again] == [s.run_id for s in specs]
    other = expand(suite(selection={"fraction": 0.1}, search={"trials": 4, "seed": 8}))
    other_ce = {s.run_id for s in other if s.method.name == "ce"}
    ce_ids = {s.run_id for s in specs if s.method.name == "ce"}
    assert other_ce & ce_ids == {s.run_id for s in specs if s.method.name == "ce"
                                 and s.method.trial == 0}  # fmt: skip
    assert all(s.selection.model_dump() == {"split": "noisy_val", "fraction": 0.1, "seed": s.seed,
                               "headline": "noisy_val"} for s in specs)  # fmt: skip


def test_a_search_never_repeats_a_configuration_and_stops_when_the_space_runs_out():
    raw = {"name": "s", "datasets": ["digits"], "noise": [{"model": "sym", "ratios": [0.5]}],
           "seeds": [0], "methods": [{"name": "bootstrap"}, {"name": "gce"}],
           "selection": {}, "search": {"trials": 8, "seed": 0}}  # fmt: skip
    specs = expand(suite_from_dict(raw, "suite"))
    for name, size in (("bootstrap", 3), ("gce", 5)):  # beta in {0.8, 0.9, 0.95}; 5 values of q
        mine = [s for s in specs if s.method.name == name]
        configs = {json.dumps(s.method.hparams, sort_keys=True) for s in mine}
        assert len(mine) == len(configs) == size
        assert [s.method.trial for s in mine] == list(range(size))


def test_adding_a_method_entry_redraws_no_other_entrys_trials():
    one = expand(suite(selection={}, search={"trials": 4}))
    raw = {"name": "s", "datasets": ["digits"], "noise": [{"model": "sym", "ratios": [0.5]}],
           "seeds": [0, 1], "methods": [{"name": "gce"}, {"name": "ce"}, {"name": "ssr"}],
           "selection": {}, "search": {"trials": 4}}  # fmt: skip
    two = expand(suite_from_dict(raw, "suite"))
    assert {s.run_id for s in one} <= {s.run_id for s in two}


def test_adding_a_knob_to_a_search_space_redraws_no_other_knob():
    from nlbench.methods.api import Choice, LogUniform, Uniform
    from nlbench.methods.api.search import draw_configuration

    space = {"lr": LogUniform(1e-3, 1e-1), "q": Uniform(0.1, 1.0)}
    wider = {**space, "k": Choice((10, 20, 50))}
    for trial in range(1, 6):
        before = draw_configuration(space, 0, "gce:abc", trial)
        after = draw_configuration(wider, 0, "gce:abc", trial)
        assert {k: after[k] for k in before} == before
    draws = {draw_configuration(space, 0, "gce:abc", t)["q"] for t in range(1, 6)}
    assert len(draws) == 5  # the knob's stream still differs from trial to trial


def test_the_headline_rule_does_not_change_a_run_and_no_selection_changes_nothing():
    plain = {s.run_id for s in expand(suite())}
    assert all(s.selection is None for s in expand(suite()))
    noisy_val = expand(suite(selection={"headline": "noisy_val"}))
    last = expand(suite(selection={"headline": "last"}))
    assert [s.run_id for s in noisy_val] == [s.run_id for s in last]
    assert not plain & {s.run_id for s in noisy_val}


def test_a_search_without_a_validation_split_is_refused():
    with pytest.raises(ConfigError, match="selection"):
        suite(search={"trials": 2})


SEARCH = """
name: search_faults
datasets: [digits]
noise: [{model: sym, ratios: [0.5]}]
seeds: [0, 1]
methods:
  - name: ce
    hparams: {network: mlp, epochs: 6, batch_size: 64}
selection: {fraction: 0.1}
search: {trials: 5, seed: 1}
"""


@pytest.mark.slow
def test_a_search_killed_with_sigkill_resumes_losing_and_repeating_no_trial(
    write_suite, tmp_path, capsys
):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nlbench.cli import main
    from nlbench.suite_loading import load_suite

    root = Path(__file__).resolve().parents[1]
    path = write_suite(SEARCH)
    results = tmp_path / "results" / "search_faults"

    def records() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}

    proc = subprocess.Popen(
        [sys.executable, str(root / "run_bench.py"), "run", str(path), "--executor", "serial",
         "--no-progress"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(records()) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = records()
    specs = expand(load_suite(path))
    assert 3 <= len(before) < len(specs) == 10, "the kill must land mid-search"
    capsys.readouterr()
    assert main(["run", str(path), "--executor", "serial", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{len(specs) - len(before)} trained, {len(before)} already stored" in out
    after = records()
    assert {json.loads((results / n).read_text())["run_id"] for n in after} == {
        s.run_id for s in specs
    }
    assert all(after[name] == mtime for name, mtime in before.items())  # none repeated
    trials = sorted(json.loads((results / n).read_text())["spec"]["method"]["trial"] for n in after)
    assert trials == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def _searched_record(trial: int, seed: int, val: list[float], test: list[float]):
    from factories import record_dict

    from nlbench.records import parse_record

    raw = record_dict(f"t{trial}-s{seed}", seed=seed, accs=tuple(test),
                      hparams={"epochs": len(test), "lr": [0.02, 0.1, 0.005][trial]})  # fmt: skip
    raw["spec"]["method"].update(trial=trial, recipe="0123abcd")
    raw["spec"]["selection"] = {"split": "noisy_val", "fraction": 0.1, "seed": seed,
                                "headline": "noisy_val"}  # fmt: skip
    for epoch, acc in zip(raw["epochs"], val):
        epoch["noisy_val_acc"] = acc
    best = max(range(len(val)), key=val.__getitem__)
    raw["final"].update(val_selected_acc=test[best], val_epoch=best, best_val_acc=val[best])
    return parse_record(raw)


def test_the_leaderboard_picks_by_noisy_validation_and_shows_what_the_test_set_would_add(tmp_path):
    """Trial 1 has the best noisy-validation accuracy, trial 2 the best test accuracy (the
    oracle): the cell shows trial 1 at its noisy-val epoch, names its lr, and the gap."""
    from nlbench.report import build_report

    records = []
    for seed in (0, 1):
        records += [
            _searched_record(0, seed, val=[40, 50, 45], test=[60, 70, 65]),  # defaults
            _searched_record(1, seed, val=[55, 60, 58], test=[75, 80 + seed, 79]),  # val's pick
            _searched_record(2, seed, val=[50, 52, 51], test=[85, 90, 88]),  # test's pick
        ]
    text = build_report(records, tmp_path).markdown.read_text()
    section = text.split("## digits · sym · noisy val 10%\n", 1)[1]
    first_title = section.split("### ", 1)[1].split("\n", 1)[0]
    assert first_title.startswith("epoch selected by validation accuracy")
    assert "| ce     | **80.50 ± 0.71 [74.1, 86.9] (2)** |" in section  # trial 1, epoch 1: 80, 81
    assert text.count("## digits") == 1  # the split's per-run seed does not split the table
    assert "lr=0.1" in section.split("### chosen hyperparameters", 1)[1]
    gaps = section.split("### what test-set selection would add", 1)[1]
    assert "| ce     | 0.2   |" in gaps and "90.00" in gaps and "80.50" in gaps and "+9.50" in gaps
    assert "70.00" in gaps  # the defaults at their noisy-val epoch
    assert "Kendall" in section and "best epoch (selected on the test set)" in section


def test_the_suites_headline_leads_the_tables_whatever_the_records_say(tmp_path):
    from nlbench.report import build_report

    records = [_searched_record(0, seed, val=[40, 50, 45], test=[60, 70, 65]) for seed in (0, 1)]
    for headline, first in (("last", "last-epoch"), ("noisy_val", "epoch selected by validation")):
        text = build_report(records, tmp_path / headline, headline=headline).markdown.read_text()
        section = text.split("## digits · sym · noisy val 10%\n", 1)[1]
        assert section.split("### ", 1)[1].startswith(first)
