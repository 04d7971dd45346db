"""Noise models: realised rates, exact class maps, seeding, validation and CIFAR-N labels.

Each test pins one property of specs/noise.md so a change of convention (true class allowed or not,
exact count or per-sample draw, map direction) fails loudly rather than shifting every table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from nlbench.data.dataset import Dataset
from nlbench.data.noise import (
    CIFAR10_ASYM,
    DIGITS_ASYM,
    NOISE_MODELS,
    NoisyLabels,
    apply_noise,
    block5_targets,
    majority_flips,
    resample_uniform,
)
from nlbench.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared"
N = 20000
RATE_TOL = 0.015  # about 5 binomial standard deviations at N = 20,000


def make_dataset(
    family: str = "synthetic",
    num_classes: int = 10,
    n: int = N,
    side: int = 4,
    coarse: np.ndarray | None = None,
    train_index: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Dataset:
    """Balanced labels (shuffled) and random 1 x side x side images, built in milliseconds."""
    rng = np.random.default_rng(123)
    if labels is None:
        labels = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    images = rng.integers(0, 256, (len(labels), 1, side, side), dtype=np.uint8)
    return Dataset(
        name=f"fake_{family}",
        family=family,
        x_train=images,
        y_train=labels,
        x_test=images[:10],
        y_test=labels[:10],
        classes=tuple(str(c) for c in range(num_classes)),
        mean=(0.5,),
        std=(0.25,),
        train_index=train_index,
        coarse_train=coarse,
    )


@pytest.fixture(scope="module")
def ten() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="module")
def cifar10() -> Dataset:
    return make_dataset("cifar10")


@pytest.fixture(scope="module")
def cifar100() -> Dataset:
    labels = np.random.default_rng(5).permutation(np.arange(N, dtype=np.int64) % 100)
    # Official-looking coarse ids: a fixed random assignment of 5 fine classes per superclass.
    fine_to_coarse = np.random.default_rng(6).permutation(np.arange(100) % 20)
    return make_dataset("cifar100", 100, labels=labels, coarse=fine_to_coarse[labels])


def flipped(noisy: NoisyLabels, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = noisy.labels != clean
    return clean[mask], noisy.labels[mask]


# ---- registry and validation ----


def test_every_model_has_a_one_line_doc() -> None:
    expected = {
        "sym",
        "sym_flip",
        "pairflip",
        "asym",
        "asym_superclass",
        "instance",
        "cifarn",
        "given",
    }
    assert expected == set(NOISE_MODELS)
    for model in NOISE_MODELS.values():
        assert model.doc and "\n" not in model.doc


def test_ratio_outside_unit_interval_is_rejected(ten: Dataset) -> None:
    with pytest.raises(DataError, match=r"^noise ratio 1.7 for 'sym' is outside \[0, 1\]$"):
        apply_noise("sym", ten, 1.7, 0)
    for bad in (-0.1, float("nan")):
        with pytest.raises(DataError, match="outside"):
            apply_noise("pairflip", ten, bad, 0)
    with pytest.raises(DataError, match="needs a noise ratio"):
        apply_noise("sym", ten, None, 0)


def test_unknown_model_and_option(ten: Dataset) -> None:
    with pytest.raises(DataError, match="did you mean 'sym_flip'"):
        apply_noise("symflip", ten, 0.2, 0)
    with pytest.raises(DataError, match="noise model 'sym' has no option 'rate'"):
        apply_noise("sym", ten, 0.2, 0, rate=0.3)


def test_bad_seed_is_rejected(ten: Dataset) -> None:
    with pytest.raises(DataError, match="seed"):
        apply_noise("sym", ten, 0.2, -1)


# ---- realised rates ----


def test_sym_resamples_over_all_classes(ten: Dataset) -> None:
    noisy = apply_noise("sym", ten, 0.5, 0)
    assert noisy.realised_rate == pytest.approx(0.45, abs=RATE_TOL)
    assert noisy.nominal_ratio == 0.5 and noisy.model == "sym"
    # int(r*N) samples are redrawn; about a tenth of them drew their true class back.
    assert 0 < int(0.5 * N) - noisy.noisy_mask.sum() < 0.15 * int(0.5 * N)


def test_sym_chooses_exactly_int_r_n_samples() -> None:
    labels = np.zeros(100, dtype=np.int64)
    # With 10**9 classes the chance of redrawing the true class is nil, so every choice shows;
    # 0.29 * 100 is 28.999... in floating point and DivideMix's int() truncates it to 28.
    noisy = resample_uniform(labels, 0.29, 10**9, np.random.default_rng(0))
    assert (noisy != labels).sum() == int(0.29 * 100) == 28


def test_sym_can_keep_the_true_class_on_two_classes() -> None:
    data = make_dataset(num_classes=2, n=4000)
    noisy = apply_noise("sym", data, 1.0, 3)
    assert noisy.realised_rate == pytest.approx(0.5, abs=0.04)


def test_sym_flip_rate_is_the_ratio(ten: Dataset) -> None:
    noisy = apply_noise("sym_flip", ten, 0.4, 0)
    assert noisy.realised_rate == pytest.approx(0.4, abs=RATE_TOL)
    off = noisy.transition_counts[~np.eye(10, dtype=bool)]
    assert off.min() > 0.5 * off.mean()  # spread over every other class


def test_pairflip_moves_to_the_next_class(ten: Dataset, cifar100: Dataset) -> None:
    noisy = apply_noise("pairflip", ten, 0.3, 0)
    assert noisy.realised_rate == pytest.approx(0.3, abs=RATE_TOL)
    clean, new = flipped(noisy, ten.y_train)
    assert np.array_equal(new, (clean + 1) % 10)
    wide = apply_noise("pairflip", cifar100, 0.45, 0)
    clean, new = flipped(wide, cifar100.y_train)
    assert np.array_equal(new, (clean + 1) % 100) and (new[clean == 99] == 0).all()


def test_asym_cifar10_follows_the_dividemix_map(cifar10: Dataset) -> None:
    noisy = apply_noise("asym", cifar10, 0.4, 0)
    assert noisy.realised_rate == pytest.approx(0.2, abs=RATE_TOL)
    clean, new = flipped(noisy, cifar10.y_train)
    assert all(CIFAR10_ASYM[c] == n for c, n in zip(clean.tolist(), new.tolist(), strict=True))
    cats = cifar10.y_train == 3
    assert (noisy.labels[cats] == 5).mean() == pytest.approx(0.4, abs=0.04)
    assert noisy.transition_counts[9, 1] > 0 and noisy.transition_counts[5, 3] > 0


def test_asym_cifar10_chooses_exactly_int_r_n() -> None:
    cats = make_dataset("cifar10", labels=np.full(1000, 3, dtype=np.int64))
    noisy = apply_noise("asym", cats, 0.37, 1)
    assert noisy.noisy_mask.sum() == int(0.37 * 1000)
    assert (noisy.labels[noisy.noisy_mask] == 5).all()


def test_asym_cifar100_is_block5_next_class(cifar100: Dataset) -> None:
    targets = block5_targets()
    assert targets[:6].tolist() == [1, 2, 3, 4, 0, 6] and targets[99] == 95
    noisy = apply_noise("asym", cifar100, 0.4, 0)
    assert noisy.realised_rate == pytest.approx(0.4, abs=RATE_TOL)
    clean, new = flipped(noisy, cifar100.y_train)
    assert np.array_equal(new, clean - clean % 5 + (clean % 5 + 1) % 5)


def test_asym_superclass_stays_inside_the_true_superclass(cifar100: Dataset) -> None:
    noisy = apply_noise("asym_superclass", cifar100, 0.3, 0)
    assert noisy.realised_rate == pytest.approx(0.3, abs=RATE_TOL)
    fine_to_coarse = np.zeros(100, dtype=np.int64)
    fine_to_coarse[cifar100.y_train] = cifar100.coarse_train
    clean, new = flipped(noisy, cifar100.y_train)
    assert np.array_equal(fine_to_coarse[new], fine_to_coarse[clean])
    # Every fine class has exactly one target: a cycle through its superclass.
    for c in range(100):
        assert len(np.unique(new[clean == c])) == 1


def test_asym_superclass_needs_coarse_labels(ten: Dataset) -> None:
    with pytest.raises(DataError, match="coarse_train"):
        apply_noise("asym_superclass", ten, 0.3, 0)


@pytest.mark.parametrize("family", ["digits", "mnist"])
def test_asym_digits_follows_patrini(family: str) -> None:
    data = make_dataset(family)
    noisy = apply_noise("asym", data, 0.4, 0)
    clean, new = flipped(noisy, data.y_train)
    assert all(DIGITS_ASYM[c] == n for c, n in zip(clean.tolist(), new.tolist(), strict=True))
    for source in DIGITS_ASYM:
        rows = data.y_train == source
        assert (noisy.labels[rows] != source).mean() == pytest.approx(0.4, abs=0.04)
    assert noisy.realised_rate == pytest.approx(0.2, abs=RATE_TOL)


@pytest.mark.parametrize("family", ["fashion_mnist", "synthetic", "npz"])
def test_asym_without_a_class_map_is_refused(family: str) -> None:
    message = (
        f"noise model 'asym' has no class map for dataset family '{family}'; "
        "use sym, sym_flip, pairflip or instance"
    )
    with pytest.raises(DataError, match=f"^{message}$"):
        apply_noise("asym", make_dataset(family, n=100), 0.4, 0)


@pytest.mark.parametrize("ratio", [0.2, 0.4])
def test_instance_rate_is_about_the_ratio(ratio: float) -> None:
    data = make_dataset(n=5000, side=8)
    noisy = apply_noise("instance", data, ratio, 0)
    assert noisy.realised_rate == pytest.approx(ratio, abs=0.03)
    # Instance-dependent: the wrong class depends on the image, so confusions spread widely.
    assert (noisy.transition_counts[~np.eye(10, dtype=bool)] > 0).mean() > 0.5


def test_instance_extremes_without_spread(ten: Dataset) -> None:
    assert apply_noise("instance", ten, 0.0, 0, norm_std=0.0).realised_rate == 0.0
    assert apply_noise("instance", ten, 1.0, 0, norm_std=0.0).realised_rate == 1.0


# ---- bookkeeping and seeding ----


@pytest.mark.parametrize("model", ["sym", "sym_flip", "pairflip", "asym", "instance"])
def test_same_seed_same_labels_other_seed_other_labels(cifar10: Dataset, model: str) -> None:
    before = np.random.get_state()[1].copy()
    one = apply_noise(model, cifar10, 0.3, 11)
    assert np.array_equal(np.random.get_state()[1], before)  # global RNG untouched
    np.random.seed(999)
    two = apply_noise(model, cifar10, 0.3, 11)
    other = apply_noise(model, cifar10, 0.3, 12)
    assert np.array_equal(one.labels, two.labels)
    assert not np.array_equal(one.labels, other.labels)


@pytest.mark.parametrize("model", ["sym", "sym_flip", "pairflip", "asym", "instance"])
def test_transition_counts_agree_with_labels(cifar10: Dataset, model: str) -> None:
    noisy = apply_noise(model, cifar10, 0.35, 2)
    counts = noisy.transition_counts
    assert counts.shape == (10, 10) and counts.sum() == N
    assert np.array_equal(counts.sum(axis=1), np.bincount(cifar10.y_train, minlength=10))
    assert np.array_equal(counts.sum(axis=0), np.bincount(noisy.labels, minlength=10))
    assert np.trace(counts) == N - noisy.noisy_mask.sum()
    assert np.array_equal(noisy.noisy_mask, noisy.labels != cifar10.y_train)
    assert noisy.realised_rate == noisy.noisy_mask.mean() and noisy.labels.dtype == np.int64


GOLDEN = {  # sha256 prefixes of the labels: a changed draw order or convention must fail here
    "asym": "8471dfa75d922daa",
    "instance": "cd49a582294e834c",
    "pairflip": "acf0f22b9ebf0921",
    "sym": "6beec03073b795c1",
    "sym_flip": "0242660d02d53cdf",
}


@pytest.mark.parametrize("model", sorted(GOLDEN))
def test_labels_are_bit_identical_to_the_recorded_ones(model: str) -> None:
    data = make_dataset("cifar10", n=500)
    labels = apply_noise(model, data, 0.4, 0).labels
    digest = hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest()[:16]
    assert digest == GOLDEN[model]


# ---- CIFAR-N ----


@pytest.fixture
def cifarn_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(9)
    clean = rng.integers(0, 10, 40)
    arrays = {
        "clean_label": clean,
        "aggre_label": np.where(rng.random(40) < 0.1, (clean + 1) % 10, clean),
        "random_label1": rng.integers(0, 10, 40),
        "random_label2": rng.integers(0, 10, 40),
        "random_label3": rng.integers(0, 10, 40),
        "worse_label": (clean + 3) % 10,
    }
    path = tmp_path / "c10n.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_cifarn_reads_the_chosen_key(cifarn_file) -> None:
    path, arrays = cifarn_file
    data = make_dataset("cifar10", labels=arrays["clean_label"])
    noisy = apply_noise("cifarn", data, None, 0, file=str(path), key="worst")
    assert np.array_equal(noisy.labels, arrays["worse_label"])
    assert noisy.realised_rate == 1.0 and noisy.nominal_ratio is None
    aggre = apply_noise("cifarn", data, None, 0, file=str(path), key="aggre")
    assert np.array_equal(aggre.labels, arrays["aggre_label"])


def test_cifarn_subset_uses_train_index(cifarn_file) -> None:
    path, arrays = cifarn_file
    index = np.array([1, 4, 5, 30])
    data = make_dataset("cifar10", labels=arrays["clean_label"][index], train_index=index)
    noisy = apply_noise("cifarn", data, None, 0, file=str(path), key="random2")
    assert np.array_equal(noisy.labels, arrays["random_label2"][index])


def test_cifarn_checks_the_clean_labels(cifarn_file) -> None:
    path, arrays = cifarn_file
    data = make_dataset("cifar10", labels=(arrays["clean_label"] + 1) % 10)
    with pytest.raises(DataError, match=r"disagrees .* on 40 of 40 clean labels"):
        apply_noise("cifarn", data, None, 0, file=str(path), key="aggre")
    # Right labels, wrong rows: the subset claims images 1..4 but holds images 0..3.
    shifted = make_dataset("cifar10", labels=arrays["clean_label"][:4], train_index=np.arange(1, 5))
    assert not np.array_equal(arrays["clean_label"][1:5], arrays["clean_label"][:4])
    with pytest.raises(DataError, match="standard train order"):
        apply_noise("cifarn", shifted, None, 0, file=str(path), key="aggre")


def test_cifarn_refuses_a_ratio_and_bad_options(cifarn_file) -> None:
    path, arrays = cifarn_file
    data = make_dataset("cifar10", labels=arrays["clean_label"])
    with pytest.raises(DataError, match="leave the ratio unset"):
        apply_noise("cifarn", data, 0.4, 0, file=str(path), key="worst")
    with pytest.raises(DataError, match="did you mean 'worst'"):
        apply_noise("cifarn", data, None, 0, file=str(path), key="worse")
    with pytest.raises(DataError, match="labels cifar100"):
        apply_noise("cifarn", data, None, 0, file=str(path), key="noisy100")
    with pytest.raises(DataError, match="does not exist"):
        apply_noise("cifarn", data, None, 0, file=str(path.with_name("gone.npz")), key="worst")
    with pytest.raises(DataError, match="needs option file"):
        apply_noise("cifarn", data, None, 0, key="worst")


def test_cifarn_reads_a_pt_file(tmp_path: Path, cifarn_file) -> None:
    _, arrays = cifarn_file
    pt = tmp_path / "CIFAR-10_human.pt"
    torch.save({key: value for key, value in arrays.items()}, pt)
    data = make_dataset("cifar10", labels=arrays["clean_label"])
    noisy = apply_noise("cifarn", data, None, 0, file=str(pt), key="random1")
    assert np.array_equal(noisy.labels, arrays["random_label1"])


def test_cifar100n_on_a_cifar100_dataset(tmp_path: Path) -> None:
    clean = np.arange(30) % 100
    path = tmp_path / "c100n.npz"
    np.savez(path, clean_label=clean, noisy_label=(clean + 7) % 100)
    data = make_dataset("cifar100", 100, labels=clean)
    noisy = apply_noise("cifarn", data, None, 0, file=str(path), key="noisy100")
    assert np.array_equal(noisy.labels, (clean + 7) % 100)
    with pytest.raises(DataError, match="no 'aggre_label'"):
        apply_noise(
            "cifarn",
            make_dataset("cifar10", labels=clean % 10),
            None,
            0,
            file=str(path),
            key="aggre",
        )


CIFARN_SUBSET = SHARED / "data" / "cifar-n" / "cifar10n_labels.npz"
C10_SUBSET = SHARED / "data" / "cifar10_subset" / "cifar10_subset.npz"


@pytest.mark.skipif(
    not (CIFARN_SUBSET.is_file() and C10_SUBSET.is_file()),
    reason="shared CIFAR-N labels or cifar10_subset absent",
)
def test_real_cifar10n_on_the_shared_subset() -> None:
    with np.load(C10_SUBSET) as archive:
        labels, index = archive["y_train"], archive["train_index"]
    data = make_dataset("cifar10", labels=labels, train_index=index, side=1)
    rates = {
        key: apply_noise("cifarn", data, None, 0, file=str(CIFARN_SUBSET), key=key).realised_rate
        for key in ("aggre", "worst")
    }
    assert rates == pytest.approx({"aggre": 0.0910, "worst": 0.4105}, abs=5e-4)


def test_cifarn_to_npz_converts_the_official_pickle(cifarn_file, tmp_path) -> None:
    import runpy
    import sys

    import torch

    _, arrays = cifarn_file
    source, target = tmp_path / "CIFAR-10_human.pt", tmp_path / "converted.npz"
    torch.save({k: v for k, v in arrays.items()}, source)
    script = Path(__file__).resolve().parents[1] / "scripts" / "cifarn_to_npz.py"
    old, sys.argv = sys.argv, ["cifarn_to_npz.py", str(source), str(target)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old
    assert done.value.code == 0
    with np.load(target, allow_pickle=False) as converted:
        assert {k: converted[k].tolist() for k in converted.files} == {
            k: v.tolist() for k, v in arrays.items()
        }


def test_majority_flips_are_measured_on_the_transition_counts() -> None:
    counts = np.array([[6, 4, 0], [2, 3, 5], [0, 0, 9]])
    assert majority_flips(counts) == [1]  # class 1: label 2 (5) outnumbers the truth (3)
    assert majority_flips(np.eye(3, dtype=int) * 5) == []
    data = make_dataset("cifar10", n=2000)
    assert apply_noise("pairflip", data, 0.3, 0).majority_flipped == []
    assert len(apply_noise("pairflip", data, 0.6, 0).majority_flipped) == 10
    assert apply_noise("sym", data, 0.9, 0).majority_flipped == []  # the truth keeps 1 - 0.9 * 0.9


def test_a_majority_flip_warns_before_training_and_footnotes_the_table(
    write_suite, tmp_path, capsys
):
    from nlbench.cli import main

    suite = write_suite("""
name: flip
datasets: [{name: synthetic, options: {n_train: 400, n_test: 40, num_classes: 4, size: 8}}]
noise: [{model: pairflip, ratios: [0.2, 0.6]}]
methods: [{name: ce, hparams: {network: mlp, epochs: 1}}]
engine: {progress: false}
device: cpu
""")
    assert main(["run", str(suite)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 1 and "synthetic | pairflip 0.6: in 4 of 4 classes" in err[0], err
    board = (tmp_path / "reports" / "flip" / "leaderboard.md").read_text()
    assert "⚠ majority flip at 0.6: in 4 of 4 classes" in board and "flip at 0.2" not in board


def test_every_model_with_a_ratio_tells_methods_its_expected_flip_rate():
    """Methods read facts, never a model's name: each ratio-taking model gives its expected flip
    rate, and the realised rate of a draw agrees with it (sym redraws some labels to their truth)."""
    from nlbench.data.datasets import load_dataset
    from nlbench.data.noise import NOISE_MODELS, noise_facts

    data = load_dataset("digits")
    for name, entry in NOISE_MODELS.items():
        facts = noise_facts(name, 0.4 if entry.takes_ratio else None, 10, "digits")
        if not entry.takes_ratio:
            assert facts.expected_flip_rate is None
            continue
        assert facts.class_dependent is not None, name
        if name in ("instance", "asym_superclass"):
            continue  # a truncated normal's mean; CIFAR-100's superclasses only
        realised = apply_noise(name, data, 0.4, seed=0).realised_rate
        assert realised == pytest.approx(facts.expected_flip_rate, abs=0.04), name
