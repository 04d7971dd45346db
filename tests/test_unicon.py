"""UNICON against numbers the official code produced (tests/golden/unicon_official.json:
nazmul-karim170/UNICON at the commit in SOURCES.md; its `Train_cifar.py` functions, the
`SupConLoss` and the loader's selection run on CPU outside this repository on fixed tensors).

* the JSD score, the selection ratio, the class-uniform selection with its quirks (sample 0 in
  the unfilled slots, a one-sample class broadcast, an empty class), the refinement weights and
  the unlabelled batch size;
* one semi-supervised step at logit level (co-guessing, co-refinement, mixup, Lx, Lu, the ramp,
  the prior penalty, SimCLR) with every gradient, normal and saturated;
* the same step through our UNICON on linear networks: the parameter gradients of the official
  `train()`;
* the warm-up loss with the asymmetric-noise penalty, SimCLR on degenerate features, the ramp and
  the learning rate of every epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlbench.data.noise import NoiseFacts
from nlbench.methods import unicon as unicon_module
from nlbench.methods.api import MethodContext, StreamBatch
from nlbench.methods.toolkit.contrastive import simclr_loss
from nlbench.methods.toolkit.mixing import (
    co_guess,
    linear_rampup,
    mix,
    mixmatch_loss,
    refine_labels,
    warmup_loss,
)
from nlbench.methods.toolkit.optim import make_schedule
from nlbench.methods.unicon import UNICON, jensen_shannon, selection_ratio, uniform_selection

GOLDEN = json.loads((Path(__file__).parent / "golden" / "unicon_official.json").read_text())


def t(stored: dict | list | float) -> torch.Tensor:
    """A stored tensor ({dtype, shape, data}; "NaN"/"Infinity" as strings)."""
    if not isinstance(stored, dict):
        return torch.tensor(stored, dtype=torch.float32)
    data = json.loads(json.dumps(stored["data"]).replace('"NaN"', "NaN")
                      .replace('"-Infinity"', "-Infinity").replace('"Infinity"', "Infinity"))  # fmt: skip
    return torch.tensor(data, dtype=getattr(torch, stored["dtype"])).reshape(stored["shape"])


@pytest.mark.parametrize("case", ["selection_main", "selection_edge"])
def test_the_jsd_ratio_and_class_uniform_selection_are_the_officials(case):
    golden = GOLDEN[case]
    ins, outs = golden["inputs"], golden["outputs"]
    labels = t(ins["noisy_labels"])
    prob = (t(ins["logits_net2"]).softmax(dim=1) + t(ins["logits_net1"]).softmax(dim=1)) / 2
    jsd = jensen_shannon(prob, F.one_hot(labels, golden["C"]).float())
    assert torch.allclose(jsd, t(outs["jsd"]), atol=1e-7)
    ratio = selection_ratio(t(outs["jsd"]), golden["d_u"], golden["tau"])
    assert ratio == outs["threshold"]["SR"]
    slots, weights = uniform_selection(t(outs["jsd"]).numpy(), labels.numpy(), golden["C"], ratio)
    chosen = outs["selection"]
    assert slots.tolist() == chosen["pred_idx"]
    assert np.allclose(weights, t(chosen["weights"]).numpy(), atol=1e-7)
    assert sorted(set(range(golden["N"])) - set(slots.tolist())) == chosen.get(
        "unlabeled_idx", sorted(set(range(golden["N"])) - set(chosen["pred_idx"]))
    )
    assert int(outs["B"] / (2 * ratio)) == outs["unlabeled_batch_size_int_B_over_2SR"]


def test_the_selection_on_fifty_thousand_samples_repeats_sample_zero_as_the_official_loader():
    golden = GOLDEN["official_dataloader_50k"]
    sizes = t(golden["class_sizes"]).tolist()
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(len(labels))]
    jsd = rng.random(len(labels)).astype(np.float32)
    slots, _ = uniform_selection(jsd, labels, len(sizes), golden["SR"])
    assert len(slots) == golden["len_pred_idx"]
    assert int(golden["SR"] * len(labels) / len(sizes)) == golden["class_len"]
    filled = sum(min(s, golden["class_len"]) if s != 1 else golden["class_len"] for s in sizes)
    assert filled == golden["size_pred_after_loop"]
    assert (slots[filled:] == 0).all() and len(slots) - filled + (slots[:filled] == 0).sum() > 0


def test_the_unreachable_threshold_branch_computes_what_args_tau_would():
    demo = GOLDEN["threshold_branch_demo"]
    jsd = t(demo["jsd"])
    threshold = jsd.mean() - (jsd.mean() - jsd.min()) / demo["tau"]
    assert selection_ratio(jsd, demo["d_u"], demo["tau"]) == (jsd < threshold).sum().item() / len(
        jsd
    )
    assert selection_ratio(jsd, 0.7, 5.0) == (jsd < jsd.mean()).sum().item() / len(jsd)


def _ssl_terms(step: dict, golden: dict) -> dict[str, torch.Tensor]:
    ins = step["inputs"]
    onehot = F.one_hot(t(ins["labels_x"]), golden["C"]).float()
    targets_u = co_guess([t(ins[f"outputs_u{a}{b}"]) for a in (1, 2) for b in (1, 2)], golden["T"])
    targets_x = refine_labels(t(ins["outputs_x"]), t(ins["outputs_x2"]), onehot,
                              t(ins["w_x_raw"]), golden["T"])  # fmt: skip
    targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    mixed_target = mix(targets, step["l"], t(step["idx"]))
    logits = t(ins["logits_mixed"]).requires_grad_()
    f1, f2 = t(ins["f1_raw"]).requires_grad_(), t(ins["f2_raw"]).requires_grad_()
    lamb = linear_rampup(step["current"], step["warm_up"], golden["lambda_u"])
    semi, lx, lu = mixmatch_loss(logits, mixed_target, 2 * golden["B"], lamb)
    contrastive = simclr_loss(F.normalize(f1, dim=1), F.normalize(f2, dim=1),
                              golden["supcon_temperature"])  # fmt: skip
    total = semi + golden["lambda_c"] * contrastive
    total.backward()
    return {"targets_u": targets_u, "targets_x": targets_x, "mixed_target": mixed_target,
            "Lx": lx, "Lu": lu, "lamb": torch.tensor(lamb), "loss_simCLR": contrastive,
            "loss_total": total, "grad_total_wrt_logits_mixed": logits.grad,
            "grad_total_wrt_f1_raw": f1.grad, "grad_total_wrt_f2_raw": f2.grad}  # fmt: skip


@pytest.mark.parametrize("case", ["ssl_step", "ssl_step_saturated"])
def test_one_semi_supervised_step_and_its_gradients_are_the_officials(case):
    golden = GOLDEN[case]
    for step in golden["steps"]:
        ours = _ssl_terms(step, golden)
        for name, value in ours.items():
            expected = t(step["outputs"][name])
            assert torch.allclose(value.float(), expected, atol=1e-5, rtol=1e-5, equal_nan=True), (
                case, step["batch_idx"], name)  # fmt: skip


class _Toy(nn.Module):
    """The official check's linear 'network': features x, logits x Wl + bl; the projection
    x Wf is the head."""

    def __init__(self, wl: torch.Tensor, bl: torch.Tensor) -> None:
        super().__init__()
        self.feature_dim = wl.shape[0]
        self.classifier = nn.Linear(wl.shape[0], wl.shape[1])
        with torch.no_grad():
            self.classifier.weight.copy_(wl.T)
            self.classifier.bias.copy_(bl)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


@pytest.mark.parametrize("index", [0, 1])
def test_our_unicon_step_gives_the_official_parameter_gradients(index, monkeypatch):
    golden = GOLDEN["ssl_step"]
    step = golden["steps"][index]
    net_level = step["network_level"]
    (wf, wl, bl), (wf2, wl2, bl2) = (map(t, net_level["net_params"]),
                                     map(t, net_level["net2_params"]))  # fmt: skip
    nets = iter([_Toy(wl, bl), _Toy(wl2, bl2)])
    ctx = MethodContext(
        num_classes=golden["C"], image_shape=(1, 1, 1), device=torch.device("cpu"),
        noisy_labels=torch.zeros(64, dtype=torch.long), noise=NoiseFacts(),
        rng=np.random.default_rng(0), generator=torch.Generator(),
        network=lambda name, **o: next(nets), feature_pass=lambda *a, **k: None,
        neighbour_index=lambda f: None,
    )  # fmt: skip
    method = UNICON(ctx, UNICON.HParams(network="toy", momentum=0.0, weight_decay=0.0,
                                        warm_up=step["warm_up"]))  # fmt: skip
    heads = []
    for w in (wf, wf2):
        head = nn.Linear(w.shape[0], w.shape[1], bias=False)
        with torch.no_grad():
            head.weight.copy_(w.T)
        heads.append(head)
    method.heads = heads
    batch = golden["B"]
    method.weights[0, :batch] = t(step["inputs"]["w_x_raw"])
    method.epoch, method.num_iter[0] = step["epoch"], step["num_iter"]
    method._steps_done[0] = step["batch_idx"]
    monkeypatch.setattr(unicon_module, "mixup_lambda", lambda *a, **k: step["l"])
    monkeypatch.setattr(unicon_module, "mix_pairing", lambda *a: t(step["idx"]))
    labels = t(step["inputs"]["labels_x"])
    lab = StreamBatch(torch.arange(batch), labels, list(map(t, net_level["inputs_x1234"])))
    unl = StreamBatch(torch.arange(batch, batch + golden["Bu"]), labels,
                      list(map(t, net_level["inputs_u1234"])))  # fmt: skip
    for param in [*method.nets[0].parameters(), *heads[0].parameters()]:
        param.grad = None
    method.optimizers[0] = torch.optim.SGD([*method.nets[0].parameters(),
                                            *heads[0].parameters()], lr=0.0)  # fmt: skip
    method._ssl_step(0, lab, unl)
    grad_wf, grad_wl, grad_bl = map(t, net_level["param_grads_official_train"])
    assert torch.allclose(heads[0].weight.grad.T, grad_wf, atol=1e-6), step["batch_idx"]
    assert torch.allclose(method.nets[0].classifier.weight.grad.T, grad_wl, atol=1e-6)
    assert torch.allclose(method.nets[0].classifier.bias.grad, grad_bl, atol=1e-6)


@pytest.mark.parametrize("mode", ["sym", "asym", "asym_saturated"])
def test_the_warm_up_loss_and_its_asymmetric_penalty_are_the_officials(mode):
    golden = GOLDEN["warmup"][mode]
    logits = t(golden["logits"]).requires_grad_()
    loss = warmup_loss(logits, t(golden["labels"]), golden["noise_mode"] == "asym")
    expected = t(golden["loss_total"])
    if torch.isnan(expected):
        # The official p log p is 0 log 0 = NaN at a saturated softmax and its run dies there;
        # ours clamps p before the log (a named departure): finite, CE plus a penalty near 0.
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(t(golden["CE"]).item(), abs=0.01)
        return
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert torch.allclose(logits.grad, t(golden["grad_total_wrt_logits"]), atol=1e-6)


def test_simclr_on_zero_and_identical_views_is_the_officials():
    golden = GOLDEN["simclr_edge_zero_and_identical_views"]
    f1, f2 = t(golden["f1_raw"]).requires_grad_(), t(golden["f2_raw"]).requires_grad_()
    loss = simclr_loss(F.normalize(f1, dim=1), F.normalize(f2, dim=1), 0.05)
    loss.backward()
    assert loss.item() == pytest.approx(t(golden["loss"]).item(), abs=1e-5)
    assert torch.allclose(f1.grad, t(golden["grad_wrt_f1_raw"]), atol=1e-5)
    assert torch.allclose(f2.grad, t(golden["grad_wrt_f2_raw"]), atol=1e-5)


def test_the_ramp_and_every_epochs_learning_rate_are_the_officials():
    ramp = GOLDEN["linear_rampup"]
    for current, value in ramp["values"].items():
        assert linear_rampup(float(current), ramp["warm_up"], ramp["lambda_u"]) == value
    hp = UNICON.HParams()
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=hp.lr)
    schedule = make_schedule(optimizer, "cosine", hp.epochs, hp.eta_min / hp.lr,
                             period=hp.cosine_period)  # fmt: skip
    for epoch, lr in enumerate(GOLDEN["lr_per_epoch_0_to_350"]):
        assert math.isclose(optimizer.param_groups[0]["lr"], lr, rel_tol=1e-9), epoch
        optimizer.step()
        schedule.step()
