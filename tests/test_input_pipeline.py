"""Each method's input scaling pinned to its official code: the defaults of its hyperparameters,
the constants its paper suites set per dataset (the official `Normalize(mean, std)`, whose
file:line each method's docstring cites), and the engine turning them into what a network sees.

A changed constant fails here by name, not as a reproduction that drifts by a point.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from nlbench.data.datasets import load_dataset
from nlbench.data.noise import NoiseFacts, apply_noise
from nlbench.engine import Engine, EngineOptions
from nlbench.expansion import expand
from nlbench.methods.api import get
from nlbench.methods.api.plan import StreamBatch
from nlbench.methods.ce import CrossEntropy
from nlbench.methods.confident_learning import ConfidentLearning
from nlbench.methods.sop import SOP, renormalise
from nlbench.suite_loading import load_suite

SSR_CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
"""SSR main_cifar.py l.194; also DivideMix's, ELR's, MixUp's, SOP's and CL's CIFAR-10 constants."""
SSR_CIFAR100 = ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))
"""SSR main_cifar.py l.198; also DivideMix's and GCE's CIFAR-100 constants."""
ELR_CIFAR100 = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
"""ELR data_loaders.py l.51, 55; also SOP's CIFAR-100 view 1 and test (l.91, 95)."""
SCE_CIFAR10 = ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768))
SCE_CIFAR100 = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
KERAS_CIFAR10 = ((0.4914, 0.48216, 0.44653), (1 / 255,) * 3)
"""x - 255 m_c in 0..255 units: Patrini et al.'s per-pixel mean subtraction, per channel."""
GCE_CIFAR10 = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@cache
def _resolved(suite: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(dataset, method) -> the resolved hparams of every run of that pair in a shipped suite."""
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for spec in expand(load_suite(BENCHMARKS / f"{suite}.yaml")):
        key = (spec.dataset.name, spec.method.name)
        pairs.setdefault(key, []).append(spec.method.hparams)
    return pairs


def _assert_inputs(suite: str, dataset: str, method: str, stats: Any, **more: Any) -> None:
    runs = _resolved(suite)[(dataset, method)]
    for hp in runs:
        assert (hp["inputs"], hp["input_stats"]) == ("normalised", stats), (suite, dataset, method)
        for key, value in more.items():
            assert hp[key] == value, (suite, dataset, method, key)


def _defaults(method: str, **required: Any) -> dict[str, Any]:
    return get(method).HParams(**required).model_dump()


@pytest.mark.parametrize("method", ["ce", "gce", "sce", "elr", "bootstrap", "forward", "mixup",
                                    "sop", "confident_learning", "dividemix", "ssr"])  # fmt: skip
def test_without_a_suite_every_method_normalises_with_the_datasets_constants(method):
    """No HParams default can name per-dataset constants (a 3-channel default would break the
    1-channel digits): the default is the loader's constants, which are SSR's for CIFAR."""
    hp = _defaults(method)
    assert (hp["inputs"], hp["input_stats"]) == ("normalised", None)


def test_ce_takes_each_papers_constants_under_its_protocol():
    for suite in ("ssr_cifar10_paper", "dividemix_cifar10_paper", "mixup_paper"):
        _assert_inputs(suite, "cifar10", "ce", SSR_CIFAR10)
    for suite in ("ssr_cifar100_paper", "dividemix_cifar100_paper"):
        _assert_inputs(suite, "cifar100", "ce", SSR_CIFAR100)
    _assert_inputs("elr_paper", "cifar100", "ce", ELR_CIFAR100)
    _assert_inputs("sce_paper", "cifar10", "ce", SCE_CIFAR10)
    _assert_inputs("sop_paper", "cifar100", "ce", ELR_CIFAR100)
    _assert_inputs("forward_paper", "cifar10", "ce", KERAS_CIFAR10)


def test_gce_has_no_suite_and_takes_its_cifar10_constants_as_an_option():
    hp = get("gce").HParams(input_stats=[list(GCE_CIFAR10[0]), list(GCE_CIFAR10[1])])
    assert hp.input_stats == GCE_CIFAR10


def test_sce_suite_has_the_ports_constants():
    _assert_inputs("sce_paper", "cifar10", "sce", SCE_CIFAR10)
    _assert_inputs("sce_paper", "cifar100", "sce", SCE_CIFAR100)


def test_elr_suite_has_its_loaders_constants():
    _assert_inputs("elr_paper", "cifar10", "elr", SSR_CIFAR10)
    _assert_inputs("elr_paper", "cifar100", "elr", ELR_CIFAR100)


@pytest.mark.parametrize("method", ["bootstrap", "forward"])
def test_patrini_methods_subtract_the_mean_in_pixel_units(method):
    _assert_inputs("forward_paper", "cifar10", method, KERAS_CIFAR10)


def test_mixup_suite_has_its_loaders_constants():
    _assert_inputs("mixup_paper", "cifar10", "mixup", SSR_CIFAR10)


def test_sop_suite_normalises_cifar100s_second_view_with_cifar10_constants():
    _assert_inputs("sop_paper", "cifar10", "sop", SSR_CIFAR10, view2_input_stats=None)
    _assert_inputs("sop_paper", "cifar100", "sop", ELR_CIFAR100, view2_input_stats=SSR_CIFAR10)
    assert _defaults("sop")["view2_input_stats"] is None
    with pytest.raises(ValueError, match="set input_stats"):
        SOP.HParams(view2_input_stats=SSR_CIFAR10)


def test_confident_learning_predicts_its_folds_on_the_training_view():
    assert _defaults("confident_learning")["fold_view"] == "weak"
    _assert_inputs("dividemix_cifar10_paper", "cifar10", "confident_learning", SSR_CIFAR10)
    _assert_inputs("dividemix_cifar100_paper", "cifar100", "confident_learning", SSR_CIFAR100)


def test_dividemix_suites_have_its_loaders_constants():
    _assert_inputs("dividemix_cifar10_paper", "cifar10", "dividemix", SSR_CIFAR10)
    _assert_inputs("dividemix_cifar100_paper", "cifar100", "dividemix", SSR_CIFAR100)


def test_ssr_suites_have_its_constants():
    _assert_inputs("ssr_cifar10_paper", "cifar10", "ssr", SSR_CIFAR10)
    _assert_inputs("ssr_cifar100_paper", "cifar100", "ssr", SSR_CIFAR100)


def _constant_image_engine(value: int) -> Engine:
    """Three-channel 8x8 training images, every pixel `value`."""
    data = load_dataset("synthetic", n_train=16, n_test=8, num_classes=2, size=8, channels=3)
    data = dataclasses.replace(data, x_train=np.full_like(data.x_train, value))
    noisy = apply_noise("sym", data, 0.0, seed=0)
    return Engine(data, noisy, 0, torch.device("cpu"), EngineOptions(progress=False),
                  noise=NoiseFacts(0.0, False))  # fmt: skip


def _torchvision(value: int, *steps: Any) -> torch.Tensor:
    """What the official `transforms.Compose([ToTensor(), *steps])` makes of an 8x8 RGB image."""
    image = Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8))
    return transforms.Compose([transforms.ToTensor(), *steps])(image)


@pytest.mark.parametrize(
    ("hparams", "steps"),
    [
        ({"inputs": "normalised", "input_stats": SSR_CIFAR10}, [transforms.Normalize(*SSR_CIFAR10)]),
        ({"inputs": "normalised", "input_stats": KERAS_CIFAR10},
         [transforms.Normalize(*KERAS_CIFAR10)]),
        ({"inputs": "unit", "input_stats": SSR_CIFAR10}, []),
    ],
)  # fmt: skip
def test_the_engine_feeds_the_network_what_totensor_and_normalize_make(hparams, steps):
    """The view a method's network sees of a constant uint8 image is, bit for bit, torchvision's
    ToTensor (+ Normalize(mean, std) with the method's `input_stats`; alone with `unit`)."""
    value = 200
    eng = _constant_image_engine(value)
    eng.build(CrossEntropy, CrossEntropy.HParams(network="mlp", **hparams))
    seen = eng.ctx.features(lambda x: x, view="none")
    expected = _torchvision(value, *steps)
    assert torch.equal(seen, expected.expand_as(seen))
    if hparams["inputs"] == "unit":
        assert torch.equal(seen, torch.full_like(seen, value / 255))


def test_sops_second_view_renormalised_equals_normalising_with_its_own_constants():
    pixels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16) / 255
    view1 = transforms.Normalize(*ELR_CIFAR100)(pixels)
    own = transforms.Normalize(*SSR_CIFAR10)(pixels)
    torch.testing.assert_close(renormalise(view1, ELR_CIFAR100, SSR_CIFAR10), own, rtol=0,
                               atol=1e-6)  # fmt: skip


def test_sop_cuts_its_second_view_after_renormalising_it():
    """With `view2_input_stats`, view 2 reaches the network normalised with its own constants,
    then cut (the official order: Normalize, then Cutout of the normalised tensor)."""
    eng = _constant_image_engine(200)
    hp = SOP.HParams(network="mlp", batch_size=8, epochs=1, input_stats=ELR_CIFAR100,
                     view2_input_stats=SSR_CIFAR10)  # fmt: skip
    method = eng.build(SOP, hp)
    assert method.begin_epoch(0).streams["all"].views == ("weak", "autoaugment_weak")
    ids = torch.arange(8)
    images = eng.views.train.images[ids]
    views = [eng.views.make(images, view) for view in ("weak", "autoaugment_weak")]
    seen: list[torch.Tensor] = []
    method.net.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    method.train_step({"all": StreamBatch(ids, eng.noisy[ids], views)})
    view2 = seen[0][8:]
    cut = view2 == 0
    assert cut.any()
    assert torch.equal(view2[~cut], renormalise(views[1], ELR_CIFAR100, SSR_CIFAR10)[~cut])


@pytest.mark.parametrize("fold_view", ["weak", "none"])
def test_confident_learning_predicts_each_fold_on_its_fold_view(fold_view):
    eng = _constant_image_engine(200)
    hp = ConfidentLearning.HParams(network="mlp", batch_size=8, epochs=3, folds=2,
                                   fold_view=fold_view)  # fmt: skip
    method = eng.build(ConfidentLearning, hp)
    views: list[str] = []
    features = eng.ctx.features
    eng.ctx.features = lambda fn, view="weak", **kw: views.append(view) or features(fn, view, **kw)
    method.finish_stage(method.stage)
    assert views == [fold_view]
