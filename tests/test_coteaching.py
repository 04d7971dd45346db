"""Co-teaching, Co-teaching+ and JoCoR: schedules, the small-loss exchange, JoCoR's joint loss,
and end-to-end runs through the harness (CPU, seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from nlbench.data.noise import noise_facts
from nlbench.errors import ConfigError
from nlbench.expansion import expand
from nlbench.methods._two_networks import forget_rate_at, small_loss
from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.plan import StreamBatch
from nlbench.methods.coteaching import Coteaching
from nlbench.methods.coteaching_plus import CoteachingPlus
from nlbench.methods.jocor import JoCoR, joint_loss
from nlbench.methods.toolkit.optim import official_coteaching_schedule
from nlbench.runner import run_sweep
from nlbench.store import Store
from nlbench.suite_loading import load_suite, suite_from_dict

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


# ---- schedules -------------------------------------------------------------------------------


def official_rate_schedule(
    tau: float, n_epoch: int = 200, num_gradual: int = 10, exponent: float = 1.0
) -> np.ndarray:
    """Co-teaching main.py's rate_schedule, rebuilt from the spec (§2)."""
    schedule = np.ones(n_epoch) * tau
    schedule[:num_gradual] = np.linspace(0, tau**exponent, num_gradual)
    return schedule


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.05),
        (1, 0.10),
        (7, 0.40),
        (8, 0.45),
        (9, 0.45),
        (10, 0.45),
        (50, 0.45),
        (198, 0.45),
    ],
)
def test_forget_rate_follows_the_official_schedule_one_epoch_ahead(epoch, expected):
    # our epoch 0 is the official epoch 1, which already forgets tau / 9
    assert forget_rate_at(epoch, 0.45) == pytest.approx(expected, abs=1e-12)


def test_forget_rate_matches_official_linspace_bit_for_bit():
    for tau, c in ((0.45, 1.0), (0.5, 1.0), (0.2, 1.0), (0.45, 2.0), (0.45, 0.5)):
        official = official_rate_schedule(tau, exponent=c)
        ours = [forget_rate_at(e, tau, exponent=c) for e in range(199)]
        assert ours == official[1:].tolist()


def test_exponent_quirk_jumps_to_tau_at_tk():
    # the code raises the linspace END to c, then jumps to tau (spec §2): not the paper's T^c/T_k
    assert forget_rate_at(8, 0.45, exponent=2.0) == pytest.approx(0.45**2)
    assert forget_rate_at(9, 0.45, exponent=2.0) == 0.45


def lr_and_beta1(decay_start: int) -> dict[int, tuple[float, float]]:
    """lr and beta1 in effect during each official epoch (= our epoch + 1) of a 199-epoch run."""
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = official_coteaching_schedule(optimizer, trained_epochs=199, decay_start=decay_start)
    seen = {}
    for epoch in range(199):
        group = optimizer.param_groups[0]
        seen[epoch + 1] = (group["lr"], group["betas"][0])
        optimizer.step()
        schedule.step()
    return seen


def test_coteaching_schedule_gives_the_official_plan():
    plan = lr_and_beta1(decay_start=80)
    assert plan[1] == (1e-3, 0.9)
    assert plan[79] == (1e-3, 0.9)
    assert plan[80] == (pytest.approx(1e-3), 0.1)
    assert plan[81] == (pytest.approx(1e-3 * 119 / 120), 0.1)  # 9.92e-4
    assert plan[140] == (pytest.approx(5.0e-4), 0.1)
    assert plan[199] == (pytest.approx(1e-3 / 120), 0.1)  # 8.3e-6: never 0
    cifar100 = lr_and_beta1(decay_start=100)
    assert cifar100[100] == (pytest.approx(1e-3), 0.1)
    assert cifar100[199] == (pytest.approx(1e-5), 0.1)


# ---- a hand-made batch: per-sample losses chosen, gradients read back -------------------------

B, C = 8, 3


def make_ctx(
    noise_model: str = "pairflip", hint: float | None = 0.5, nets: list[nn.Module] | None = None
) -> MethodContext:
    pool = iter(nets or [])
    return MethodContext(
        num_classes=C,
        image_shape=(1, 1, B),
        device=torch.device("cpu"),
        noisy_labels=torch.zeros(B, dtype=torch.long),
        noise=noise_facts(noise_model, hint, C, "synthetic"),
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
        network=lambda name, **opts: next(pool),
        feature_pass=lambda *a, **k: None,
        neighbour_index=lambda feats: None,
    )


def lookup_net(margins: list[float]) -> nn.Linear:
    """A net whose input is one-hot sample identity: column i of its weight is sample i's logits.

    Label 0 for all; sample i's logit for class 0 is margins[i], so its CE falls as the margin
    grows, and the gradient on column i is non-zero exactly when sample i enters the loss.
    """
    net = nn.Linear(B, C, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[0] = torch.tensor(margins)
    return net


def one_hot_batch() -> dict[str, StreamBatch]:
    return {"all": StreamBatch(torch.arange(B), torch.zeros(B, dtype=torch.long), [torch.eye(B)])}


def used_samples(net: nn.Linear) -> set[int]:
    return set(net.weight.grad.abs().sum(0).nonzero().flatten().tolist())


def test_each_network_updates_on_the_others_small_loss_samples():
    # net A ranks samples 0..3 lowest; net B ranks 4..7 lowest (reverse order of margins)
    net_a = lookup_net([8, 7, 6, 5, 4, 3, 2, 1])
    net_b = lookup_net([1, 2, 3, 4, 5, 6, 7, 8])
    method = Coteaching(make_ctx(nets=[net_a, net_b]), Coteaching.HParams())
    method.begin_epoch(20)  # forget rate = tau = 0.5: keep int(0.5 * 8) = 4
    method.train_step(one_hot_batch())
    assert used_samples(net_a) == {4, 5, 6, 7}  # B's picks
    assert used_samples(net_b) == {0, 1, 2, 3}  # A's picks
    assert method.diagnostics().selected.nonzero().flatten().tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize(("scale", "divisor"), [("official", 2), ("mean", 1)])
def test_cross_update_divides_by_the_pick_count_as_the_official_loss(scale, divisor):
    """bhanML/Co-teaching loss.py l.26-29: the mean CE over the partner's k picks, divided by k
    again (sum / k^2)."""
    out1 = torch.tensor([[3.0, 0, 0], [0, 0, 0], [-3.0, 0, 0], [1.0, 0, 0]])
    out2 = torch.tensor([[-3.0, 0, 0], [3.0, 0, 0], [0, 0, 0], [2.0, 0, 0]])
    labels = torch.zeros(4, dtype=torch.long)
    hp = Coteaching.HParams(loss_scale=scale)
    method = Coteaching(make_ctx(nets=[lookup_net([0] * B)] * 2), hp)
    loss1, loss2, picks = method.cross_update(out1, out2, labels, forget_rate=0.5)
    ce1 = F.cross_entropy(out1, labels, reduction="none")
    ce2 = F.cross_entropy(out2, labels, reduction="none")
    assert sorted(picks.tolist()) == [1, 3]  # net 2's two smallest
    assert loss1.item() == pytest.approx(ce1[[1, 3]].mean().item() / divisor)
    assert loss2.item() == pytest.approx(ce2[[0, 3]].mean().item() / divisor)


# xingruiyu/coteaching_plus loss.py `loss_coteaching_plus` (l.37-82), run outside this repository
# on these tensors (C = 4, B = 8, dataset indices 1..8 so its index-0 quirk stays out of play):
# (forget rate, step, logits2 = logits1?) -> (loss_1, loss_2).
PLUS_LOGITS1 = torch.sin(torch.arange(32, dtype=torch.float64) * 0.7).float().reshape(8, 4) * 3
PLUS_LOGITS2 = torch.cos(torch.arange(32, dtype=torch.float64) * 0.5).float().reshape(8, 4) * 3
PLUS_OFFICIAL = {
    (0.2, 100, False): (0.41231024265289307, 0.363277792930603),
    (0.5, 100, False): (0.5449993014335632, 0.5175301432609558),
    (0.2, 6000, False): (0.41231024265289307, 0.363277792930603),
    (0.2, 100, True): (1.562783360, 1.562783360),
    (0.2, 6000, True): (0.0, 0.0),
}


@pytest.mark.parametrize("case", sorted(PLUS_OFFICIAL))
def test_coteaching_plus_losses_match_the_official_code(case):
    forget_rate, step, agree = case
    method = CoteachingPlus.__new__(CoteachingPlus)
    method.hp = CoteachingPlus.HParams()
    logits2 = PLUS_LOGITS1 if agree else PLUS_LOGITS2
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    loss1, loss2, _ = method.disagreement_losses(PLUS_LOGITS1, logits2, labels, forget_rate, step)
    expected1, expected2 = PLUS_OFFICIAL[case]
    assert loss1.item() == pytest.approx(expected1, rel=1e-6, abs=1e-7)
    assert loss2.item() == pytest.approx(expected2, rel=1e-6, abs=1e-7)


def test_coteaching_plus_mean_scale_is_a_named_departure():
    method = CoteachingPlus.__new__(CoteachingPlus)
    method.hp = CoteachingPlus.HParams(loss_scale="mean")
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    loss1, _, _ = method.disagreement_losses(PLUS_LOGITS1, PLUS_LOGITS2, labels, 0.2, 100)
    assert loss1.item() == pytest.approx(0.41231024265289307 * 4, rel=1e-6)  # k = 4 picks


@pytest.mark.parametrize("cls", [Coteaching, CoteachingPlus, JoCoR])
def test_methods_run_the_official_lr_plan_and_score_net_1(cls):
    nets = [lookup_net([1] * B), lookup_net([2] * B)]
    method = cls(make_ctx(nets=nets), cls.HParams())
    optimizers = [v for v in vars(method).values() if isinstance(v, torch.optim.Optimizer)]
    assert len(optimizers) == (1 if cls is JoCoR else 2)
    plan = lr_and_beta1(decay_start=80)
    for epoch in range(199):
        for optimizer in optimizers:
            group = optimizer.param_groups[0]
            assert (group["lr"], group["betas"][0]) == plan[epoch + 1]
            optimizer.step()
        method.end_epoch(epoch)
    x = torch.eye(B)
    assert torch.equal(method.predict(x), nets[0](x))


def test_small_loss_floors_and_keeps_everything_when_nothing_would_remain():
    losses = torch.tensor([0.3, 0.1, 0.2, 0.4, 0.0])
    assert small_loss(losses, 0.45).tolist() == [4, 1]  # int(0.55 * 5) = 2
    assert small_loss(losses, 0.9).tolist() == [4, 1, 2, 0, 3]  # int(0.5) = 0 -> all


def test_coteaching_plus_trains_only_on_disagreements_after_warm_up():
    # samples 0..3: both nets predict class 0; samples 4..7: net A says 0, net B says 1
    net_a = lookup_net([5, 4, 3, 2, 1, 2, 3, 4])
    net_b = lookup_net([5, 4, 3, 2, -1, -2, -3, -4])
    method = CoteachingPlus(make_ctx(nets=[net_a, net_b]), CoteachingPlus.HParams(init_epoch=20))
    method.begin_epoch(30)  # past warm-up; forget 0.5 of the 4 disagreements -> keep 2
    method.train_step(one_hot_batch())
    assert used_samples(net_a) == {4, 5}  # B's smallest losses among 4..7: margins -1, -2
    assert used_samples(net_b) == {6, 7}  # A's smallest among 4..7: margins 4, 3


def test_coteaching_plus_is_coteaching_during_warm_up():
    net_a = lookup_net([5, 4, 3, 2, 1, 2, 3, 4])
    net_b = lookup_net([5, 4, 3, 2, -1, -2, -3, -4])
    method = CoteachingPlus(make_ctx(nets=[net_a, net_b]), CoteachingPlus.HParams(init_epoch=20))
    method.begin_epoch(18)  # official epoch 19 < 20: whole batch, forget tau -> keep 4 of 8
    method.train_step(one_hot_batch())
    assert used_samples(net_a) == {0, 1, 2, 3}  # B's four largest margins, agreeing or not


@pytest.mark.parametrize(("batch_index", "trains"), [(0, True), (50, False)])
def test_coteaching_plus_without_disagreement_obeys_the_5000_step_gate(batch_index, trains):
    net_a = lookup_net([5, 4, 3, 2, 1, 2, 3, 4])
    net_b = lookup_net([1, 1, 1, 1, 1, 1, 1, 1])
    method = CoteachingPlus(make_ctx(nets=[net_a, net_b]), CoteachingPlus.HParams(init_epoch=20))
    method.begin_epoch(99)  # official epoch 100; 100 * 50 = 5000 is not < 5000
    method.batch_index = batch_index
    method.train_step(one_hot_batch())
    assert used_samples(net_a) == (set(range(B)) if trains else set())
    assert method.diagnostics().selected.sum().item() == (B if trains else 0)


# ---- JoCoR -----------------------------------------------------------------------------------


def test_joint_loss_matches_a_hand_computation():
    # p1 = (1/2, 1/2); p2 = (3/4, 1/4); label 0; lambda 0.5
    logits1 = torch.tensor([[0.0, 0.0]])
    logits2 = torch.tensor([[math.log(3.0), 0.0]])
    ce = math.log(2) + math.log(4 / 3)
    kl_12 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl_21 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = 0.5 * ce + 0.5 * (kl_12 + kl_21)
    got = joint_loss(logits1, logits2, torch.tensor([0]), co_lambda=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_joint_loss_kl_terms_match_the_official_kl_div_form():
    gen = torch.Generator().manual_seed(0)
    l1, l2 = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    labels = torch.tensor([0, 1, 2, 3, 0])

    def official_kl(pred, soft):  # kl_loss_compute(pred, soft, reduce=False)
        return F.kl_div(F.log_softmax(pred, 1), F.softmax(soft, 1), reduction="none").sum(1)

    kl = joint_loss(l1, l2, labels, co_lambda=1.0)
    assert torch.allclose(kl, official_kl(l1, l2) + official_kl(l2, l1), atol=1e-6)


def test_joint_loss_keeps_a_finite_gradient_where_the_official_kl_div_goes_nan():
    """A saturated softmax (logit gap 120 > ~104, where float32's exp underflows to 0): the
    official kl_div's backward through its target is 0 * log 0 = NaN; ours, in log space, gives
    the exact gradient, checked against the same loss in float64 (no underflow there)."""
    l1 = torch.tensor([[0.0, 120.0, 0.0]], requires_grad=True)
    l2 = torch.tensor([[0.0, 0.0, 120.0]], requires_grad=True)
    official = F.kl_div(F.log_softmax(l1, 1), F.softmax(l2, 1), reduction="none").sum()
    official.backward()
    assert torch.isnan(l2.grad).all()
    ours = [l1.detach().clone().requires_grad_(), l2.detach().clone().requires_grad_()]
    joint_loss(*ours, torch.tensor([1]), co_lambda=0.9).sum().backward()
    exact = [l1.detach().double().requires_grad_(), l2.detach().double().requires_grad_()]
    joint_loss(*exact, torch.tensor([1]), co_lambda=0.9).sum().backward()
    for got, want in zip(ours, exact):
        assert torch.isfinite(got.grad).all()
        assert torch.allclose(got.grad.double(), want.grad, atol=1e-6)


def test_jocor_updates_both_networks_on_one_joint_selection():
    # 0,1: both confident and agreeing; 2,3: only A confident; 4,5: only B; 6,7: both moderate.
    # Co-teaching would train A on {0,1,4,5} and B on {0,1,2,3}; JoCoR's joint loss (lambda 0.9)
    # keeps the agreeing samples for both.
    net_a = lookup_net([8, 8, 8, 8, -2, -2, 3, 3])
    net_b = lookup_net([8, 8, -2, -2, 8, 8, 3, 3])
    method = JoCoR(make_ctx(nets=[net_a, net_b]), JoCoR.HParams())
    method.begin_epoch(20)
    method.train_step(one_hot_batch())
    assert used_samples(net_a) == used_samples(net_b) == {0, 1, 6, 7}
    assert method.diagnostics().selected.nonzero().flatten().tolist() == [0, 1, 6, 7]
    assert len(method.optimizer.param_groups[0]["params"]) == 2  # one Adam over both nets


@pytest.mark.parametrize(
    ("model", "classes", "family", "expected"),
    [
        ("asym", 10, "cifar10", 0.2),  # five of ten classes mapped: the official JoCoR halving
        ("asym", 10, "mnist", 0.2),
        ("pairflip", 10, "cifar10", 0.4),  # the family's own conventions keep the nominal rate
        ("sym_flip", 10, "cifar10", 0.4),
        ("sym", 10, "cifar10", 0.36),  # DivideMix's sym: r (C - 1) / C of the labels change
        ("asym", 100, "cifar100", 0.4),  # every class mapped (named departure from JoCoR's code)
    ],
)
@pytest.mark.parametrize("cls", [Coteaching, JoCoR])
def test_the_forget_rate_defaults_to_the_expected_flip_rate(cls, model, classes, family, expected):
    ctx = make_ctx(nets=[lookup_net([0] * B), lookup_net([0] * B)])
    ctx.noise = noise_facts(model, 0.4, classes, family)
    method = cls(ctx, cls.HParams())
    assert method.tau == pytest.approx(expected)
    assert method.diagnostics().assumed_noise_rate == pytest.approx(expected)
    ctx = make_ctx(nets=[lookup_net([0] * B), lookup_net([0] * B)])
    ctx.noise = noise_facts(model, 0.4, classes, family)
    assert cls(ctx, cls.HParams(forget_rate=0.3)).tau == 0.3


def test_unknown_noise_rate_needs_an_explicit_forget_rate():
    with pytest.raises(ConfigError, match="forget_rate"):
        Coteaching(make_ctx("cifarn", None, [lookup_net([0] * B)] * 2), Coteaching.HParams())
    method = Coteaching(
        make_ctx("cifarn", None, [lookup_net([0] * B)] * 2), Coteaching.HParams(forget_rate=0.2)
    )
    assert method.tau == 0.2


# ---- end to end through the harness ----------------------------------------------------------

SYNTHETIC = """
name: ct_e2e
datasets: [{name: synthetic, options: {n_train: 1000, n_test: 500, num_classes: 10, size: 8,
                                       separation: 5.0}}]
noise: [{model: pairflip, ratios: [0.45]}]
seeds: [0]
engine: {progress: false}
common: {network: mlp, epochs: 30, batch_size: 64, decay_start: 15, inputs: normalised}
methods:
  - {name: ce, hparams: {optimizer: adam, lr: 0.001, weight_decay: 0, schedule: coteaching,
                         view: none}}
  - {name: coteaching}
"""


def test_coteaching_beats_ce_under_pairflip_45(write_suite, tmp_path):
    suite = load_suite(write_suite(SYNTHETIC))
    store = Store(tmp_path / "results" / "ct_e2e")
    run_sweep(suite, expand(suite), store, device_name="cpu")
    records = {r.spec.method.name: r for r in store.load()[0]}
    assert {r.status for r in records.values()} == {"ok"}
    ce, ct = records["ce"], records["coteaching"]
    assert ct.scored_network == "net 1"
    assert ct.final.mean_last10 > ce.final.mean_last10 + 5.0
    diag = ct.epochs[-1].diagnostics
    assert diag["selection_precision"] > 0.65  # the noisy labels alone are 55% clean
    assert diag["fraction_selected"] == 35 * 15 / 1000  # int(0.55 * 64) of 15 full batches


# ---- the paper suites on a tiny fake CIFAR folder ---------------------------------------------

SHRINK = [
    "seeds=[0]",
    "noise.1.ratios=[0.5]",
    "methods.hparams.epochs=1",
    "common.network_options={width: 0.0625}",
    "engine.progress=false",
]


def test_paper_suite_validates_and_expands_without_data():
    specs = expand(load_suite(BENCHMARKS / "coteaching_paper.yaml"))
    assert len(specs) == 3 * 3 * 4 * 5  # datasets x ratios x methods x seeds
    for spec in specs:  # Co-teaching's protocol for every method, CE included
        hp = spec.method.hparams
        assert (hp["inputs"], hp["num_iter_per_epoch"], hp["view"]) == ("unit", 400, "none")
        assert hp.get("weight_decay", 0.0) == 0.0 and hp.get("optimizer", "adam") == "adam"
    for dataset, decay, init, co_lambda in (("cifar10", 80, 20, 0.9), ("cifar100", 100, 5, 0.85)):
        by_method = {s.method.name: s.method.hparams for s in specs if s.dataset.name == dataset}
        assert all(h["network"] == "cnn9" and h["epochs"] == 199 for h in by_method.values())
        assert by_method["coteaching"]["decay_start"] == decay
        assert by_method["ce"]["decay_start"] == decay
        assert by_method["coteaching_plus"]["decay_start"] == 80  # Co-teaching+ keeps 80
        assert by_method["coteaching_plus"]["init_epoch"] == init
        assert by_method["jocor"]["co_lambda"] == co_lambda
    assert {s.noise.seed for s in specs} == {0}


def test_paper_suite_runs_one_epoch_on_a_fake_cifar_folder(tmp_path, fake_cifar):
    raw = yaml.safe_load((BENCHMARKS / "coteaching_paper.yaml").read_text())
    raw["datasets"] = [d for d in raw["datasets"] if d["name"] != "mnist"]  # CIFAR only
    suite = suite_from_dict(
        raw,
        "coteaching_paper.yaml",
        [*SHRINK, f"dataset.root={fake_cifar}", f"results_dir={tmp_path / 'results'}"],
    )
    specs = expand(suite)
    assert len(specs) == 2 * 2 * 4
    store = Store(tmp_path / "results" / suite.name)
    summary = run_sweep(suite, specs, store, device_name="cpu")
    assert summary.failed == []
    records = store.load()[0]
    assert len(records) == 16 and all(len(r.epochs) == 1 for r in records)
    two_nets = [r for r in records if r.spec.method.name != "ce"]
    assert {r.scored_network for r in two_nets} == {"net 1"}


@pytest.mark.parametrize(("cls", "steps"), [(Coteaching, 401), (JoCoR, 401), (CoteachingPlus, 468)])
def test_epochs_stop_at_the_official_iteration_cap(cls, steps):
    """Co-teaching's main.py l.178-181 and JoCoR's jocor.py l.118-121 break when i > 400 (401
    batches: MNIST's 468 are cut); Co-teaching+'s main.py has no cap. CIFAR's 390 are untouched."""
    method = cls.__new__(cls)
    method.hp = cls.HParams(forget_rate=0.2)
    method.tau, method.epoch = 0.2, 0
    for n, expected in ((60_000, steps), (50_000, 390)):
        method.ctx = make_ctx()
        method.ctx.noisy_labels = torch.zeros(n, dtype=torch.long)
        method.trained_net1 = torch.zeros(n, dtype=torch.bool)
        assert method.begin_epoch(0).steps == expected
