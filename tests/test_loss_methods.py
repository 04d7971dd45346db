"""The six loss- and regularisation-based methods inside the engine: forward correction's two
stages, what each method keeps per sample, their diagnostics, and the report's T heat-map.

Tiny synthetic data (4 classes, 8x8) and an MLP: these check behaviour, not accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlbench.data.datasets import load_dataset
from nlbench.data.noise import apply_noise, noise_facts
from nlbench.engine import Engine, EngineOptions
from nlbench.methods.api.plan import StreamBatch
from nlbench.methods.elr import ELR
from nlbench.methods.forward import ForwardCorrection
from nlbench.methods.mixup import MixUp
from nlbench.methods.sop import SOP
from nlbench.methods.toolkit.views import cutout


def engine(model: str = "pairflip", ratio: float = 0.3, n_train: int = 96) -> Engine:
    data = load_dataset("synthetic", n_train=n_train, n_test=32, num_classes=4, size=8)
    noisy = apply_noise(model, data, ratio, seed=0)
    return Engine(data, noisy, 0, torch.device("cpu"), EngineOptions(progress=False),
                  noise=noise_facts(model, ratio, 4, data.family))  # fmt: skip


SMALL = {"network": "mlp", "batch_size": 16, "lr": 0.05}


def test_forward_estimates_t_after_its_first_stage_then_trains_a_fresh_network():
    eng = engine()
    fit = eng.fit(ForwardCorrection, ForwardCorrection.HParams(**SMALL, epochs=4))
    assert [e.phase for e in fit.epochs] == ["estimate", "estimate", "correct", "correct"]
    t_hat = np.array(fit.estimates["transition"])
    assert t_hat.shape == (4, 4)
    np.testing.assert_allclose(t_hat.sum(axis=1), 1.0, atol=1e-6)
    errors = [e.diagnostics.get("transition_error") for e in fit.epochs]
    assert errors[:2] == [None, None] and all(0 <= e <= 1 for e in errors[2:])


@pytest.mark.filterwarnings("ignore:Detected call of")  # schedules stepped without training
def test_forward_stages_have_their_own_networks_and_schedules():
    eng = engine()
    hp = ForwardCorrection.HParams(**SMALL, epochs=4, schedule="multistep", milestones=(1,))
    method = ForwardCorrection(eng.ctx, hp)
    estimate, correct = method.stages
    assert (estimate.name, estimate.interim, correct.name, correct.interim) == (
        "estimate", True, "correct", False)  # fmt: skip
    assert estimate.net is not correct.net
    assert not torch.equal(estimate.net.classifier.weight, correct.net.classifier.weight)
    for epoch in range(2):
        method.begin_epoch(epoch)
        method.end_epoch(epoch)
    assert estimate.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    assert correct.optimizer.param_groups[0]["lr"] == 0.05  # stage 2's schedule has not started
    assert method.transition is None
    plan = method.begin_epoch(2)
    assert plan.phase == "correct" and not plan.interim and method.transition is not None
    assert method.predict is not None and method.stage is correct
    state = method.state_dict()
    fresh = ForwardCorrection(eng.ctx, hp)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.transition, method.transition)  # a resumed stage 2 keeps its T
    assert fresh.stage is fresh.stages[1]  # and its stage


def test_forward_with_the_true_transition_is_an_oracle_with_one_stage():
    eng = engine()
    fit = eng.fit(
        ForwardCorrection, ForwardCorrection.HParams(**SMALL, epochs=2, true_transition=True)
    )
    assert [e.phase for e in fit.epochs] == ["correct", "correct"]
    assert all(e.diagnostics["transition_error"] < 1e-6 for e in fit.epochs)


@pytest.mark.parametrize(
    ("hparams", "words"),
    [
        ({"epochs": 4, "estimate_epochs": 4}, "between 1 and epochs - 1"),
        ({"epochs": 4, "true_transition": True, "estimate_epochs": 2}, "needs no estimation"),
    ],
)
def test_forward_refuses_stages_that_cannot_work(hparams, words):
    with pytest.raises(ValueError, match=words):
        ForwardCorrection.HParams(**SMALL, **hparams)


def test_elr_keeps_per_sample_targets_and_reports_their_agreement_with_clean_labels():
    eng = engine()
    fit = eng.fit(ELR, ELR.HParams(**SMALL, epochs=2))
    assert all("relabel_accuracy" in e.diagnostics for e in fit.epochs)
    method = ELR(eng.ctx, ELR.HParams(**SMALL, epochs=2))
    assert torch.count_nonzero(method.targets) == 0
    method.begin_epoch(0)
    labels = eng.noisy[:16]
    loss = method.loss(method.net(eng.views.make(eng.views.train.images[:16], "none")), labels,
                       torch.arange(16))  # fmt: skip
    assert torch.isfinite(loss)
    assert torch.count_nonzero(method.targets[:16].sum(1)) == 16
    assert torch.count_nonzero(method.targets[16:]) == 0
    assert torch.equal(method.state_dict()["_extra"]["targets"], method.targets)


def test_sop_draws_its_second_view_only_with_the_consistency_term_and_moves_only_batch_rows():
    eng = engine()
    two = SOP(eng.ctx, SOP.HParams(**SMALL, epochs=1))
    assert two.begin_epoch(0).streams["all"].views == ("weak", "autoaugment_cutout")
    one = SOP(eng.ctx, SOP.HParams(**SMALL, epochs=1, ratio_consistency=0.0))
    assert one.begin_epoch(0).streams["all"].views == ("weak",)
    u0, v0 = two.noise.u.detach().clone(), two.noise.v.detach().clone()
    ids = torch.arange(8, 24)
    images = eng.views.train.images[ids]
    views = [eng.views.make(images, "weak"), eng.views.make(images, "autoaugment_cutout")]
    two.train_step({"all": StreamBatch(ids, eng.noisy[ids], views)})
    moved = (two.noise.u.detach() != u0).any(1) | (two.noise.v.detach() != v0).any(1)
    assert moved[ids].all() and not moved[:8].any() and not moved[24:].any()


def test_sop_flags_samples_whose_estimated_label_noise_is_large():
    eng = engine()
    method = SOP(eng.ctx, SOP.HParams(**SMALL, epochs=1))
    with torch.no_grad():
        method.noise.u[:10] = 0.9  # u^2 = 0.81 > 0.5
    diag = method.diagnostics()
    assert not diag.selected[:10].any() and diag.selected[10:].all()


def test_mixup_with_alpha_zero_is_cross_entropy():
    eng = engine()
    method = MixUp(eng.ctx, MixUp.HParams(**SMALL, epochs=1, alpha=0.0))
    ids = torch.arange(16)
    view = eng.views.make(eng.views.train.images[ids], "none")
    expected = F.cross_entropy(method.net(view), eng.noisy[ids])
    losses = method.train_step({"all": StreamBatch(ids, eng.noisy[ids], [view])})
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_cutout_zeroes_one_square_of_half_the_side_per_image():
    images = torch.ones(64, 3, 8, 8)
    out = cutout(images, torch.Generator().manual_seed(0))
    holes = (out[:, 0] == 0).sum(dim=(1, 2))
    assert holes.max() == 16 and holes.min() >= 4  # 4x4, clipped to 2x2 at worst in a corner
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # the same square in every channel


@pytest.mark.parametrize(
    ("name", "options", "count"),
    [
        ("sce_cnn", {}, 1_639_794),  # SCELoss-Reproduce model.py SCEModel, counted in PyTorch
        ("resnet_cifar", {"depth": 32}, 467_946),  # loss-correction resnet.py, Keras trainable
        ("resnet_cifar", {"depth": 44}, 662_826),
    ],
)
def test_paper_networks_have_the_official_models_parameter_counts(name, options, count):
    from nlbench.methods.toolkit.networks import build_network

    net = build_network(name, 10, 3, 32, **options)
    assert sum(p.numel() for p in net.parameters()) == count


def test_resnet_cifar_refuses_a_depth_that_is_not_2_plus_6n():
    from nlbench.errors import ConfigError
    from nlbench.methods.toolkit.networks import build_network

    with pytest.raises(ConfigError, match="2 \\+ 6n"):
        build_network("resnet_cifar", 10, 3, 32, depth=30)


def test_dividemix_warms_up_both_networks_then_trains_each_on_its_peers_split():
    from nlbench.methods.dividemix import DivideMix

    eng = engine(model="sym", ratio=0.5, n_train=128)
    hp = {**SMALL, "epochs": 3, "warm_up": 1, "batch_size": 16, "warmup_batch_size": 32}
    fit = eng.fit(DivideMix, DivideMix.HParams(**hp))
    assert [e.phase for e in fit.epochs] == ["warmup", "train", "train"]
    assert [e.pass_phases for e in fit.epochs] == [["warmup"] * 2, ["train"] * 2, ["train"] * 2]
    assert set(fit.epochs[0].losses) == {"warmup_loss_1", "warmup_loss_2"}
    assert set(fit.epochs[1].losses) == {"loss_x_1", "loss_u_1", "loss_x_2", "loss_u_2"}
    assert fit.epochs[0].diagnostics == {}
    assert {"detection_precision", "selection_precision"} <= set(fit.epochs[2].diagnostics)
    method = DivideMix(eng.ctx, DivideMix.HParams(**hp))
    method.begin_epoch(0)
    plan = method.begin_epoch(1)
    first, second = plan.passes()
    assert (first.tag, second.tag) == (("mixmatch", 0), ("mixmatch", 1))
    assert set(first.streams) == set(second.streams) == {"labelled", "unlabelled"}
    assert first.length_from == second.length_from == "labelled"
    labelled_0 = set(first.streams["labelled"].indices.tolist())
    assert labelled_0 == set((method.clean_prob[1] > 0.5).nonzero().squeeze(1).tolist())


@pytest.mark.filterwarnings("ignore:Detected call of")  # schedules stepped without training
def test_confident_learning_predicts_each_fold_out_of_sample_and_retrains_on_what_cleanlab_keeps():
    from nlbench.methods.confident_learning import ConfidentLearning, label_issues

    eng = engine(model="sym", ratio=0.5, n_train=160)
    hp = ConfidentLearning.HParams(**SMALL, epochs=9, folds=3)  # stages of 2, 2, 2, then 3 epochs
    method = ConfidentLearning(eng.ctx, hp)
    assert torch.bincount(method.fold).tolist() == [54, 53, 53]
    phases = []
    for epoch in range(9):
        plan = method.begin_epoch(epoch)
        phases.append(plan.phase)
        ids = plan.streams["all"].indices
        if epoch < 6:  # a fold's network never trains on its own fold
            assert not (method.fold[ids] == epoch // 2).any()
        method.end_epoch(epoch)
    assert phases == ["fold_1", "fold_1", "fold_2", "fold_2", "fold_3", "fold_3"] + ["retrain"] * 3
    assert torch.allclose(method.pred_probs.sum(1), torch.ones(160))
    expected = ~label_issues(eng.noisy.numpy(), method.pred_probs.numpy(), "prune_by_noise_rate")
    assert torch.equal(method.keep, torch.from_numpy(expected))
    assert set(ids.tolist()) == set(np.flatnonzero(expected).tolist())
    assert method.diagnostics().transition.shape == (4, 4)


def test_confident_learning_flags_the_flipped_rows_and_no_clean_one_under_every_rule():
    """Out-of-sample probabilities that put 0.8 (+ up to 0.2 of Dirichlet noise) on each row's
    true class, and noisy labels that flip 20 known rows: every pruning rule must flag exactly
    those rows (True = issue), not the clean ones, nor the 10 clean rows the model is unsure of
    (0.5 on the label, 0.4 on the next class), which sit below every class threshold."""
    from nlbench.methods.confident_learning import label_issues

    rng = np.random.default_rng(0)
    true = np.arange(200) % 4
    probs = 0.2 * rng.dirichlet(np.ones(4), 200)
    probs[np.arange(200), true] += 0.8
    unsure = np.arange(5, 200, 20)
    probs[unsure] = 0.05
    probs[unsure, true[unsure]], probs[unsure, (true[unsure] + 1) % 4] = 0.5, 0.4
    flipped = np.arange(3, 200, 10)
    labels = true.copy()
    labels[flipped] = (true[flipped] + 1 + np.arange(20) % 3) % 4  # to each other class
    for rule in ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning"):
        assert np.flatnonzero(label_issues(labels, probs, rule)).tolist() == flipped.tolist(), rule
    assert not label_issues(true, probs, "prune_by_noise_rate").any()  # the clean labels: none


def test_confident_learnings_rule_reaches_cleanlab():
    """On probabilities with no clear structure the rules disagree: prune_by_class flags more than
    prune_by_noise_rate, and `both` is their intersection; a wrapper that dropped the rule would
    give one set for all three."""
    from nlbench.methods.confident_learning import label_issues

    probs = np.abs(np.sin(np.arange(600).reshape(150, 4) * 0.77)) + 0.05
    probs /= probs.sum(1, keepdims=True)
    labels = np.arange(150) % 4
    by_rate = label_issues(labels, probs, "prune_by_noise_rate")
    by_class = label_issues(labels, probs, "prune_by_class")
    assert by_rate.sum() < by_class.sum()
    assert np.array_equal(label_issues(labels, probs, "both"), by_rate & by_class)


def test_noise_detection_is_scored_against_the_truly_mislabelled_samples():
    from nlbench.engine.diagnostics import score_diagnostics
    from nlbench.methods.api import Diagnostics

    clean = torch.tensor([0, 1, 2, 3, 0, 1])
    noisy = torch.tensor([0, 2, 2, 0, 0, 3])  # samples 1, 3, 5 mislabelled
    flagged = torch.tensor([False, True, True, False, False, True])
    scores = score_diagnostics(Diagnostics(flagged=flagged), noisy, clean)
    assert scores["detection_precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["detection_recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["fraction_flagged"] == 0.5
    nothing = score_diagnostics(Diagnostics(flagged=torch.zeros(6, dtype=torch.bool)), noisy, clean)
    assert "detection_precision" not in nothing and nothing["detection_recall"] == 0.0


def test_an_interim_stages_epochs_are_never_selected():
    """Forward's estimating network may score higher early on; no rule credits it to forward."""
    from nlbench.records import EpochLog, FinalMetrics

    def epoch(i, acc, interim, val):
        return EpochLog(epoch=i, interim=interim, losses={}, test_acc=acc, noisy_val_acc=val,
                        seconds={}, images_per_second=1.0)  # fmt: skip

    final = FinalMetrics.of([epoch(0, 90.0, True, 80.0), epoch(1, 50.0, False, 40.0),
                             epoch(2, 60.0, False, 45.0)])  # fmt: skip
    assert (final.best_acc, final.best_epoch, final.val_epoch) == (60.0, 2, 2)
    assert final.mean_last10 == 55.0 and final.last_acc == 60.0


def test_only_the_named_oracle_gets_the_realised_transition_in_its_context():
    eng = engine()
    plain = eng.build(ForwardCorrection, ForwardCorrection.HParams(**SMALL, epochs=4))
    assert plain.ctx.oracle_transition is None and plain.transition is None
    oracle = eng.build(ForwardCorrection, ForwardCorrection.HParams(**SMALL, true_transition=True))
    assert oracle.hp.epochs == 120  # one 120-epoch stage, as the paper's "forward T" rows
    assert torch.allclose(oracle.transition.sum(1), torch.ones(4))
    assert eng.build(ELR, ELR.HParams(**SMALL, epochs=1)).ctx.oracle_transition is None
