"""DISC against numbers the official code produced (tests/golden/disc_official.json: JackYFL/DISC
at the commit in SOURCES.md, its statements run on CPU outside this repository on fixed tensors;
`algorithms/DISC.py` l.244-360, `losses/loss_other.py` l.38-50, `losses/loss_mixup.py` l.23-35).

* the end-of-epoch split, corrected labels and threshold updates over five epochs of fixed
  softmax tables, with a saturated softmax, a three-way tie and a class with no selected sample;
* CE and GCE and their gradients on two views, a saturated GCE with zero gradient;
* mixup with a given lambda and pairing on a linear model, its loss and gradients;
* whole training epochs of our DISC (warm-up, then CE + GCE + two mixups) on a linear network
  with the official initial weights, batches and mixup draws: weights, kept softmax, sets,
  labels and thresholds after every epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlbench.data.noise import NoiseFacts
from nlbench.methods import disc as disc_module
from nlbench.methods.api import MethodContext, StreamBatch
from nlbench.methods.disc import DISC, gce
from nlbench.methods.toolkit.mixing import mix, soft_cross_entropy

GOLDEN = json.loads((Path(__file__).parent / "golden" / "disc_official.json").read_text())


def tensor(values, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def make_disc(labels: list[int], classes: int, net: nn.Module, **hparams) -> DISC:
    ctx = MethodContext(
        num_classes=classes,
        image_shape=(1, 1, 1),
        device=torch.device("cpu"),
        noisy_labels=tensor(labels, torch.long),
        noise=NoiseFacts(),
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
        network=lambda name, **options: net,
        feature_pass=lambda *a, **k: None,
        neighbour_index=lambda features: None,
    )
    return DISC(ctx, DISC.HParams(network="given", **hparams))


@pytest.mark.parametrize(
    "case",
    [
        "A_selection_sigma0.5_m0.95",
        "A_selection_sigma0.3_m0.99",
        "A_selection_sigma0.5_m0.5_capcheck",
    ],
)
def test_the_split_corrections_and_thresholds_follow_the_official_end_of_epoch_block(case):
    golden = GOLDEN[case]
    method = make_disc(golden["labels"], golden["C"], nn.Linear(1, golden["C"]),
                       ema=golden["momentum"], sigma=golden["sigma"])  # fmt: skip
    for epoch in golden["epochs"]:
        assert torch.allclose(method.tau_w, tensor(epoch["w_prev_confidence_in"]))
        method.w_probs, method.s_probs = tensor(epoch["w_probs"]), tensor(epoch["s_probs"])
        method._split_and_update()
        assert method.clean.tolist() == epoch["clean_flags"]
        assert method.hard.tolist() == epoch["hard_flags"]
        assert method.corrected.tolist() == epoch["correction_flags"]
        trained = method.clean | method.hard | method.corrected
        assert trained.tolist() == epoch["weak_flags"]
        assert method.train_labels.tolist() == epoch["weak_labels"]
        assert torch.allclose(method.tau_w, tensor(epoch["w_prev_confidence_out"]), atol=1e-7)
        assert torch.allclose(method.tau_s, tensor(epoch["s_prev_confidence_out"]), atol=1e-7)


def test_a_saturated_wrong_label_is_corrected_and_a_class_can_lose_every_sample():
    golden = GOLDEN["A_selection_sigma0.5_m0.95"]
    first, last = golden["epochs"][0], golden["epochs"][-1]
    assert first["correction_flags"][1] and first["weak_labels"][1] == 1  # given 2, saturated 1
    selected = [label for label, on in zip(golden["labels"], last["selected_flags"]) if on]
    assert 3 not in selected  # class 3's samples: none passes, as the official's last epoch
    assert golden["classes_with_selected_samples_last_epoch"] == sorted(set(selected))


@pytest.mark.parametrize("loss_name", ["CE_mean", "GCE_mean_q0.7"])
@pytest.mark.parametrize("view", ["w", "s"])
def test_ce_and_gce_and_their_gradients_are_the_officials(loss_name, view):
    golden = GOLDEN["B_losses"]
    (case,) = [c for c in golden["cases"] if c["name"] == loss_name and c["view"] == view]
    logits = tensor(golden[f"{view}_logits"]).requires_grad_()
    targets = tensor(golden["targets"], torch.long)
    loss = F.cross_entropy(logits, targets) if loss_name == "CE_mean" else gce(logits, targets, 0.7)
    loss.backward()
    assert loss.item() == pytest.approx(case["loss"], abs=1e-6)
    assert torch.allclose(logits.grad, tensor(case["grad_logits"]), atol=1e-7)


def test_the_weighted_clean_and_hard_terms_are_the_officials():
    golden = GOLDEN["B_losses"]
    for case in [c for c in golden["cases"] if c["name"] == "DISC_CE_GCE_batch_loss"]:
        w = tensor(golden["w_logits"]).requires_grad_()
        s = tensor(golden["s_logits"]).requires_grad_()
        y = tensor(golden["targets"], torch.long)
        clean, hard = (
            tensor(case["b_clean_flags"], torch.bool),
            tensor(case["b_hard_flags"], torch.bool),
        )
        loss = torch.zeros(())
        if clean.any():
            ce = F.cross_entropy(w[clean], y[clean]) + F.cross_entropy(s[clean], y[clean])
            loss = loss + ce * case["lamd_ce"] * (int(clean.sum()) / len(y))
        if hard.any():
            robust = gce(w[hard], y[hard], 0.7) + gce(s[hard], y[hard], 0.7)
            loss = loss + robust * case["lamd_h"] * (int(hard.sum()) / len(y))
        assert loss.item() == pytest.approx(case["loss"], abs=1e-6), case["tag"]
        if loss.requires_grad:
            loss.backward()
            assert torch.allclose(w.grad, tensor(case["grad_w_logits"]), atol=1e-7), case["tag"]
            assert torch.allclose(s.grad, tensor(case["grad_s_logits"]), atol=1e-7), case["tag"]
        else:
            assert case["loss_is_zero_tensor"]


def test_the_mixup_term_and_its_gradients_are_the_officials():
    golden = GOLDEN["B_losses"]["mixup_fixed"]
    x = tensor(golden["x"]).requires_grad_()
    net = nn.Linear(x.shape[1], len(golden["bias"]))
    with torch.no_grad():
        net.weight.copy_(tensor(golden["weight"]))
        net.bias.copy_(tensor(golden["bias"]))
    targets = F.one_hot(tensor(golden["y"], torch.long), len(golden["bias"])).float()
    perm = tensor(golden["index"], torch.long)
    loss = soft_cross_entropy(net(mix(x, golden["lam"], perm)), mix(targets, golden["lam"], perm))
    loss.backward()
    assert loss.item() == pytest.approx(golden["loss"], abs=1e-6)
    assert torch.allclose(x.grad, tensor(golden["grad_x"]), atol=1e-6)
    assert torch.allclose(net.weight.grad, tensor(golden["grad_weight"]), atol=1e-6)
    assert torch.allclose(net.bias.grad, tensor(golden["grad_bias"]), atol=1e-6)


def test_whole_epochs_of_our_disc_reproduce_the_officials_weights_sets_and_thresholds(monkeypatch):
    golden = GOLDEN["C_full_loop"]
    net = nn.Linear(golden["D"], golden["C"])
    with torch.no_grad():
        net.weight.copy_(tensor(golden["weight_init"]))
        net.bias.copy_(tensor(golden["bias_init"]))
    method = make_disc(
        golden["labels"], golden["C"], net, optimizer="sgd", lr=golden["lr"], momentum=0.0,
        weight_decay=golden["weight_decay"], schedule="constant", warm_up=golden["start_epoch"],
        ema=golden["momentum_ema"], sigma=golden["sigma"], lambda_ce=golden["lamd_ce"],
        lambda_h=golden["lamd_h"], alpha=golden["alpha"],
    )  # fmt: skip
    draws = iter(golden["mixup_draws"])
    pending: list[dict] = []

    def official_lambda(rng, alpha, at_least_half=False):
        pending.append(next(draws))
        return pending[-1]["lam"]

    monkeypatch.setattr(disc_module, "mixup_lambda", official_lambda)
    monkeypatch.setattr(disc_module, "mix_pairing",
                        lambda size, gen, device: tensor(pending.pop()["perm"], torch.long))  # fmt: skip
    labels = tensor(golden["labels"], torch.long)
    epochs = golden["epochs"]
    for epoch, batches in enumerate(golden["batches_per_epoch"]):
        tag = method.begin_epoch(epoch).tag  # splits the previous epoch, as its end did
        if epoch > 0:
            _same_split(method, epochs[epoch - 1])
        assert tag == epochs[epoch]["branch"].replace("disc", "train")
        for batch in batches:
            ids = tensor(batch["indexes"], torch.long)
            views = [tensor(batch["x_weak"]), tensor(batch["x_strong"])]
            method.train_step({"all": StreamBatch(ids, labels[ids], views)}, tag)
        after = epochs[epoch]
        assert not pending  # every official mixup draw was used, in order
        assert torch.allclose(net.weight, tensor(after["weight_after"]), atol=1e-6), epoch
        assert torch.allclose(net.bias, tensor(after["bias_after"]), atol=1e-6), epoch
        assert torch.allclose(method.w_probs, tensor(after["w_probs"]), atol=1e-6), epoch
        assert torch.allclose(method.s_probs, tensor(after["s_probs"]), atol=1e-6), epoch
    method.begin_epoch(len(epochs))
    _same_split(method, epochs[-1])
    assert next(draws, None) is None
    assert epochs[-1]["branch"] == "disc" and any(d["epoch"] == len(epochs) - 1
                                                 for d in golden["mixup_draws"])  # fmt: skip


def _same_split(method: DISC, official: dict) -> None:
    where = official["epoch"]
    assert method.clean.tolist() == official["clean_flags"], where
    assert method.hard.tolist() == official["hard_flags"], where
    assert method.corrected.tolist() == official["correction_flags"], where
    assert method.train_labels.tolist() == official["weak_labels"], where
    assert torch.allclose(method.tau_w, tensor(official["w_prev_confidence_out"]), atol=1e-6)
    assert torch.allclose(method.tau_s, tensor(official["s_prev_confidence_out"]), atol=1e-6)
