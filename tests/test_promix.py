"""ProMix against numbers the official code produced (tests/golden/promix_official.json:
Justherozen/ProMix at the commit in SOURCES.md; `Train_promix.py`'s `train`, `eval_train`,
`label_guessing`, `utils/utils.py` and `utils/fmix.py` run on CPU outside this repository).

* CSS at two selection ratios with an absent class and a one-sample class;
* LGA, with and without its cap;
* FMix's masks for fixed random streams;
* one whole training step of our ProMix on the official tiny networks at epoch 60 (no LGA) and
  at epoch 400 with tau 0.9 (LGA on, capped for network 2), replaying the official draws: every
  parameter gradient of both networks and both heads, and the four class priors after it;
* the lr, w, beta and LGA switch of every shipped configuration's key epochs.
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
from nlbench.methods import promix as promix_module
from nlbench.methods.api import MethodContext, StreamBatch
from nlbench.methods.promix import ProMix, class_wise_small_loss, label_guessing
from nlbench.methods.toolkit.mixing import fmix_mask
from nlbench.methods.toolkit.optim import make_schedule

GOLDEN = json.loads((Path(__file__).parent / "golden" / "promix_official.json").read_text())


def t(values, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


@pytest.mark.parametrize("rho", ["0.5", "0.7"])
def test_class_wise_small_loss_selection_is_the_officials(rho):
    case = GOLDEN["css"]["cases"][rho]
    labels = t(GOLDEN["inputs"]["labels"], torch.long)
    selected = class_wise_small_loss(t(case["raw_ce_losses"]), labels, 4, case["rho"])
    assert selected.tolist() == case["prob"]  # class 3 has no sample, class 2 one


@pytest.mark.parametrize("case", ["integrated", "crafted"])
def test_label_guessing_by_agreement_is_the_officials(case):
    golden, args = GOLDEN["label_guessing"][case], GOLDEN["label_guessing"]["args"]
    w_x = t(golden["w_x_in"])[:, None]
    chosen = (w_x == 1).squeeze(1).nonzero().squeeze(1)
    out = label_guessing(chosen, w_x, t(golden["score1"]), t(golden["score2"]),
                         t(golden["match"], torch.bool), args["tau"], args["threshold"])  # fmt: skip
    assert out.squeeze(1).tolist() == golden["w_x_out"]


class _Stream:
    """numpy's global stream, scipy's beta and Python's random, as the official FMix draws."""

    def __init__(self, seed: int) -> None:
        import random

        np.random.seed(seed)
        random.seed(seed)
        self._random = random

    def beta(self, a: float, b: float) -> float:
        from scipy.stats import beta

        return beta.rvs(a, b)

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.random.randn(*shape)

    def random(self) -> float:
        return self._random.random()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_fmix_masks_are_the_officials_for_the_same_random_streams(index):
    case = GOLDEN["fmix_masks"]["cases"][index]
    lam, mask = fmix_mask(_Stream(case["seed"]), 1.0, 3.0, tuple(case["shape"]))
    assert lam == case["lam"]
    assert ["".join(str(int(v)) for v in row) for row in mask[0]] == case["mask_rows"]


class _Tiny(nn.Module):
    """The official check's network: features avg_pool2d(x, 8) (16-d), primary head Linear."""

    def __init__(self, weight: list, bias: list) -> None:
        super().__init__()
        self.classifier = nn.Linear(16, len(bias))
        self.feature_dim = 16
        with torch.no_grad():
            self.classifier.weight.copy_(t(weight))
            self.classifier.bias.copy_(t(bias))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 8).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _images(base: list) -> torch.Tensor:
    return t(base).repeat_interleave(8, 2).repeat_interleave(8, 3)


@pytest.mark.parametrize("case", ["cifar10_epoch60", "cifar10_epoch400_lga_tau0.9"])
def test_one_training_step_gives_the_official_gradients_and_priors(case, monkeypatch):
    golden = GOLDEN["end_to_end_official_train_step"][case]
    args, ins, params = golden["args"], golden["inputs"], golden["inputs"]["params"]
    nets = iter([_Tiny(params[f"{n}.linear.weight"], params[f"{n}.linear.bias"])
                 for n in ("net1", "net2")])  # fmt: skip
    labels = t(ins["labels"], torch.long)
    ctx = MethodContext(
        num_classes=args["num_class"], image_shape=(1, 32, 32), device=torch.device("cpu"),
        noisy_labels=labels, noise=NoiseFacts(), rng=np.random.default_rng(0),
        generator=torch.Generator(), network=lambda name, **o: next(nets),
        feature_pass=lambda *a, **k: None, neighbour_index=lambda f: None,
    )  # fmt: skip
    hp = ProMix.HParams(network="tiny", momentum=0.0, weight_decay=0.0, tau=args["tau"],
                        debias_output=args["debias_output"], debias_pl=args["debias_pl"],
                        lga_threshold=args["threshold"], lga_epochs=args["start_expand"],
                        epochs=args["num_epochs"] + 1, ramp=args["warmup_ep"], warm_up=0)  # fmt: skip
    method = ProMix(ctx, hp)
    for k, name in enumerate(("net1", "net2")):
        with torch.no_grad():
            method.pseudo_heads[k].weight.copy_(t(params[f"{name}.pseudo_linear.weight"]))
            method.pseudo_heads[k].bias.copy_(t(params[f"{name}.pseudo_linear.bias"]))
        method.selected[k] = t(ins[f"w_x_{name}"], torch.float64)
    for slot, name in enumerate(("pi1", "pi2", "pi1_unrel", "pi2_unrel")):
        method.priors[slot] = t(ins[name])
    method.epoch = golden["epoch"]
    draws = iter(golden["draws_in_order"])

    def take(kind: str) -> dict:
        draw = next(draws)
        assert draw["kind"] == kind
        return draw

    monkeypatch.setattr(promix_module, "mixup_lambda",
                        lambda *a, **k: max(v := take("beta")["value"], 1 - v))  # fmt: skip
    monkeypatch.setattr(
        promix_module, "mix_pairing", lambda *a: t(take("randperm")["value"], torch.long)
    )
    monkeypatch.setattr(
        promix_module, "fmix_mask",
        lambda *a: (lambda d: (d["lam"], np.array([[list(map(int, r)) for r in d["mask_rows"]]])))(
            take("fmix_mask")),
    )  # fmt: skip
    views = [_images(ins["base_weak_4x4"]), _images(ins["base_strong_4x4"])]
    method.train_step({"all": StreamBatch(torch.arange(len(labels)), labels, views)}, "train")
    assert next(draws, None) is None
    ours = {"linear": [n.classifier for n in method.nets], "pseudo_linear": method.pseudo_heads}
    for key, expected in golden["official_grads"].items():
        net, head, part = key.split(".")
        grad = getattr(ours[head][int(net[-1]) - 1], part).grad
        assert torch.allclose(grad, t(expected), atol=2e-5, rtol=1e-4), (case, key)
    for slot, name in enumerate(("pi1", "pi2", "pi1_unrel", "pi2_unrel")):
        assert torch.allclose(method.priors[slot], t(golden["official_new_pis"][name]), atol=1e-7)


@pytest.mark.parametrize("config", sorted(GOLDEN["schedules"]))
def test_the_schedules_of_every_shipped_configuration_are_the_officials(config):
    golden = GOLDEN["schedules"][config]
    args = golden["args"]
    hp = ProMix.HParams(lr=args["lr"], ramp=args["warmup_ep"], lga_epochs=args["start_expand"],
                        epochs=args["num_epochs"] + 1, cosine_period=args["num_epochs"])  # fmt: skip
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=hp.lr)
    schedule = make_schedule(
        optimizer, "cosine", hp.epochs, hp.eta_min_ratio, period=hp.cosine_period
    )
    lrs = []
    for _ in range(hp.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    for row in golden["rows"]:
        epoch = row["epoch"]
        assert math.isclose(lrs[epoch], row["lr"], rel_tol=1e-7, abs_tol=1e-12), (config, epoch)
        w = min(epoch / hp.ramp, 1.0)
        beta = 0.1 * min(epoch / (2 * hp.ramp), 1.0)
        beta = 0.0 if epoch >= 2 * hp.ramp and beta < 1 else beta
        assert w == pytest.approx(row["w"]) and beta == pytest.approx(row["beta_effective_line254"])
        assert (epoch > hp.epochs - 1 - hp.lga_epochs) == row["lga_active"]
