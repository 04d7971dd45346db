"""Label-noise models shared by every method: name -> seeded pure function, with a one-line doc.

Papers mean different things by "50 % noise" (see the README's noise table), so each model follows one
named codebase's convention and says which; `NoisyLabels` records the realised rate next to the
nominal ratio so tables never mix the two. Every model draws only from
`np.random.default_rng(seed)`, never from global RNG state, so the same (dataset, model, ratio,
seed) gives bit-identical labels on every machine, and the noise seed stays separate from the
training seed.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from nlbench.data.dataset import Dataset
from nlbench.errors import DataError, did_you_mean
from nlbench.registry import Registry, first_sentence, options_model, validate_options


@dataclass(frozen=True)
class NoisyLabels:
    """The training labels a run uses, and what they are measured to be.

    `noisy_mask` is True where the label differs from the clean one (CORES/CIFAR-N sense, not
    Co-teaching's inverted `noise_or_not`). `transition_counts[i, j]` counts samples of clean
    class i labelled j (row = clean, as in Co-teaching, JoCoR and CIFAR-N, not cleanlab's
    transpose). `nominal_ratio` is the requested ratio, None for real human noise.
    """

    labels: np.ndarray
    noisy_mask: np.ndarray
    realised_rate: float | None
    """None when the clean training labels are unknown (a real-world dataset's own labels)."""
    transition_counts: np.ndarray
    nominal_ratio: float | None
    model: str

    @property
    def majority_flipped(self) -> list[int]:
        """Clean classes whose most frequent noisy label is a wrong one (see `majority_flips`)."""
        return majority_flips(self.transition_counts)


def realised_transition(counts: np.ndarray | list[list[int]]) -> np.ndarray:
    """T[i, j] = the fraction of clean-class-i samples labelled j, from clean-by-noisy counts; a
    class with no sample gets the identity row (nothing was flipped)."""
    counts = np.asarray(counts, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    return np.where(rows > 0, counts / np.maximum(rows, 1), np.eye(len(counts)))


def majority_flips(counts: np.ndarray | list[list[int]]) -> list[int]:
    """The clean classes c for which some wrong label j != c is given to more samples of c than
    the true label: max_{j != c} T[c, j] > T[c, c], with T the transition counts (row = clean).

    From such a class's labels alone the wrong class looks right, so no method can be expected to
    recover it: pairflip, asym and asym_superclass reach this above r = 0.5, sym_flip above
    (C - 1)/C, sym never. Measured on the drawn labels, so it holds for every model, real noise
    included.
    """
    counts = np.asarray(counts)
    off = counts.astype(np.int64).copy()
    np.fill_diagonal(off, -1)
    return [int(c) for c in np.flatnonzero(off.max(axis=1) > np.diag(counts))]


@dataclass(frozen=True)
class NoiseFacts:
    """What a method may know of the noise without a clean label or a model's name.

    `expected_flip_rate` is the fraction of labels the model is expected to change at its nominal
    ratio (sym draws from all C classes, so r (C - 1) / C; DivideMix's CIFAR-10 asym moves 5 of
    10 classes, so r / 2); None where no ratio is set (real-world labels). `class_dependent` says
    whether flips follow a fixed class-to-class map (asymmetric noise) rather than spreading over
    the other classes; None where unknown.
    """

    expected_flip_rate: float | None = None
    class_dependent: bool | None = None


def _moved(targets: np.ndarray) -> float:
    """The fraction of classes a class map sends elsewhere."""
    return float(np.mean(targets != np.arange(len(targets))))


@dataclass(frozen=True)
class NoiseModel:
    """A registered generator: `doc` is the line `list` prints, `options` its keyword options.

    `generate(dataset, ratio, rng, **options)` returns the noisy int64 labels. `takes_ratio` is
    False for real-world noise, whose rate is read from a file rather than set.
    """

    name: str
    doc: str
    generate: Callable[..., np.ndarray]
    options_model: type[BaseModel]
    takes_ratio: bool = True
    files: tuple[str, ...] = ()
    facts: Callable[[float, int, str], NoiseFacts] = lambda ratio, classes, family: NoiseFacts()
    """(nominal ratio, number of classes, dataset family) -> the `NoiseFacts` methods may read."""

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.options_model.model_fields)


NOISE_MODELS: Registry[NoiseModel] = Registry("noise model", DataError)


def _register(
    name: str,
    takes_ratio: bool = True,
    files: tuple[str, ...] = (),
    facts: Callable[[float, int, str], NoiseFacts] | None = None,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register a generator; `files` names its options that are label files (identified by
    content); `facts` what it tells methods at a given ratio (default: nothing)."""

    def wrap(generate: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        extra = {"facts": facts} if facts is not None else {}
        NOISE_MODELS.add(name, NoiseModel(name, first_sentence(generate.__doc__), generate,
                                          options_model(generate, name), takes_ratio, files,
                                          **extra))  # fmt: skip
        return generate

    return wrap


def noise_facts(model: str, ratio: float | None, num_classes: int, family: str) -> NoiseFacts:
    """The facts of noise model `model` at `ratio` on a dataset of `num_classes` classes of
    `family`: all a method may know of the noise (never its name)."""
    if ratio is None or model not in NOISE_MODELS:
        return NoiseFacts()
    return NOISE_MODELS[model].facts(ratio, num_classes, family)


def apply_noise(
    model: str, dataset: Dataset, ratio: float | None, seed: int, **options: Any
) -> NoisyLabels:
    """Noisy training labels for `dataset` under `model` at `ratio`, drawn from `seed` alone."""
    entry = NOISE_MODELS.lookup(model)
    options = validate_options(entry.options_model, "noise model", model, options, DataError)
    nominal = _check_ratio(entry, ratio)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"noise seed {seed!r} must be an integer >= 0")
    clean = dataset.y_train
    num_classes = dataset.num_classes
    if len(clean) and (clean.min() < 0 or clean.max() >= num_classes):
        raise DataError(
            f"dataset '{dataset.name}' has training labels outside 0..{num_classes - 1}"
        )
    if not dataset.clean_train:
        if model != "given":
            raise DataError(
                f"dataset '{dataset.name}' comes with noisy training labels and no clean ones, so "
                f"noise model '{model}' cannot be measured on it; use noise model 'given'"
            )
        return unmeasured(dataset.y_train, num_classes)
    labels = entry.generate(dataset, nominal, np.random.default_rng(int(seed)), **options)
    return summarise(model, clean, labels, num_classes, nominal)


def unmeasured(labels: np.ndarray, num_classes: int) -> NoisyLabels:
    """Collected labels whose clean counterparts nobody has: no mask, rate or transition."""
    return NoisyLabels(
        labels=np.asarray(labels, dtype=np.int64),
        noisy_mask=np.zeros(len(labels), dtype=bool),
        realised_rate=None,
        transition_counts=np.zeros((num_classes, num_classes), dtype=np.int64),
        nominal_ratio=None,
        model="given",
    )


def summarise(
    model: str, clean: np.ndarray, labels: np.ndarray, num_classes: int, nominal_ratio: float | None
) -> NoisyLabels:
    """Wrap noisy labels with their mask, realised rate and clean-by-noisy transition counts."""
    labels = np.asarray(labels, dtype=np.int64)
    mask = labels != clean
    pairs = clean * num_classes + labels
    counts = np.bincount(pairs, minlength=num_classes * num_classes)
    return NoisyLabels(
        labels=labels,
        noisy_mask=mask,
        realised_rate=float(mask.mean()) if len(mask) else 0.0,
        transition_counts=counts.reshape(num_classes, num_classes),
        nominal_ratio=nominal_ratio,
        model=model,
    )


def _check_ratio(entry: NoiseModel, ratio: float | None) -> float | None:
    if not entry.takes_ratio:
        if ratio is not None:
            raise DataError(
                f"noise model '{entry.name}' reads its noise rate from the label file; "
                f"leave the ratio unset (got {ratio})"
            )
        return None
    if ratio is None:
        raise DataError(f"noise model '{entry.name}' needs a noise ratio in [0, 1]; set one")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.number)):
        raise DataError(f"noise ratio {ratio!r} for '{entry.name}' is not a number in [0, 1]")
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise DataError(f"noise ratio {ratio} for '{entry.name}' is outside [0, 1]")
    return float(ratio)


# ---- array-level building blocks: pure functions of labels, ratio and a Generator ----


def resample_uniform(
    labels: np.ndarray, ratio: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Exactly int(ratio*N) samples, chosen without replacement, get a label uniform over all C.

    DivideMix/SSR's procedure: the new label may equal the true one, so the flip rate is about
    ratio*(C-1)/C (0.45 at ratio 0.5 on 10 classes). int() truncates as theirs does.
    """
    noisy = labels.copy()
    chosen = rng.permutation(len(labels))[: int(ratio * len(labels))]
    noisy[chosen] = rng.integers(0, num_classes, size=len(chosen))
    return noisy


def flip_to_other(
    labels: np.ndarray, ratio: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Each sample independently, with probability ratio, moves to a uniform *other* class.

    Equivalent to Co-teaching's per-sample multinomial over T = (1-r) on the diagonal and
    r/(C-1) elsewhere, so the expected flip rate is exactly ratio.
    """
    flip = rng.random(len(labels)) < ratio
    offsets = rng.integers(1, num_classes, size=len(labels))
    return np.where(flip, (labels + offsets) % num_classes, labels)


def flip_by_map(
    labels: np.ndarray, ratio: float, targets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Each sample independently, with probability ratio, moves to targets[label].

    This is the per-sample draw of Co-teaching/JoCoR's `multiclass_noisify` for a transition matrix
    with 1-r on the diagonal and r at (c, targets[c]); classes with targets[c] == c never move.
    """
    flip = rng.random(len(labels)) < ratio
    return np.where(flip, targets[labels], labels)


def map_exact_count(
    labels: np.ndarray, ratio: float, targets: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Exactly int(ratio*N) samples chosen from the whole set move to targets[label].

    DivideMix/SSR's asym: chosen samples of unmapped classes keep their label, so each source class
    flips ≈ ratio of its samples (not exactly) and the overall rate depends on the map.
    """
    noisy = labels.copy()
    chosen = rng.permutation(len(labels))[: int(ratio * len(labels))]
    noisy[chosen] = targets[labels[chosen]]
    return noisy


def class_map(num_classes: int, pairs: dict[int, int]) -> np.ndarray:
    """targets[c] for a map given as {source: target}; unmapped classes map to themselves."""
    targets = np.arange(num_classes, dtype=np.int64)
    for source, target in pairs.items():
        targets[source] = target
    return targets


# ---- registered models ----

# DivideMix/SSR `transition` dict: truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
# Patrini et al. 2017 (F-correction code) for MNIST: 7->1, 2->7, 5<->6, 3->8.
DIGITS_ASYM = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
_DIGIT_FAMILIES = ("digits", "mnist")


def _need_classes(model: str, dataset: Dataset, count: int) -> None:
    if dataset.num_classes != count:
        raise DataError(
            f"noise model '{model}' for family '{dataset.family}' needs {count} classes but "
            f"dataset '{dataset.name}' has {dataset.num_classes}"
        )


@_register("sym", facts=lambda r, c, family: NoiseFacts(r * (c - 1) / c, False))
def _sym(dataset: Dataset, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Resample r of the labels uniformly over all classes, truth included (DivideMix, SSR).

    DivideMix/SSR convention: exactly int(r*N) samples, so "sym 0.5" flips about 45 % on 10
    classes; use sym_flip for Co-teaching's meaning of the same number.
    """
    return resample_uniform(dataset.y_train, ratio, dataset.num_classes, rng)


@_register("sym_flip", facts=lambda r, c, family: NoiseFacts(r, False))
def _sym_flip(dataset: Dataset, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each label with probability r to a uniform other class (Co-teaching symmetric)."""
    return flip_to_other(dataset.y_train, ratio, dataset.num_classes, rng)


@_register("pairflip", facts=lambda r, c, family: NoiseFacts(r, True))
def _pairflip(dataset: Dataset, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each label with probability r from class c to c+1 mod C (Co-teaching pair flip).

    Co-teaching's convention cycles over all classes, CIFAR-100's 100 fine ones included (99 -> 0),
    with no regard for superclasses. Above r = 0.5 the wrong class becomes the majority.
    """
    num_classes = dataset.num_classes
    targets = (np.arange(num_classes, dtype=np.int64) + 1) % num_classes
    return flip_by_map(dataset.y_train, ratio, targets, rng)


def block5_targets(num_classes: int = 100) -> np.ndarray:
    """CIFAR-100 'asym' targets as ELR/JoCoR code them: next index in blocks of 5 (5k+4 -> 5k)."""
    classes = np.arange(num_classes, dtype=np.int64)
    return classes - classes % 5 + (classes % 5 + 1) % 5


@_register("asym", facts=lambda r, c, family: NoiseFacts(r * _asym_moved(family), True))
def _asym(dataset: Dataset, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Flip r of the mapped classes to look-alike ones; per-family map (DivideMix, ELR, Patrini).

    * cifar10 (DivideMix/SSR): exactly int(r*N) samples chosen from the whole set take the dict
      map truck->automobile, bird->airplane, deer->horse, cat<->dog; ≈ r of each source class
      flips, ≈ r/2 overall.
    * cifar100 (ELR/JoCoR `build_for_cifar100`): each sample with probability r moves to the next
      index within blocks of 5 consecutive fine indices. Pitfall: fine indices are alphabetical,
      so these blocks are NOT the real superclasses (only 6 of the 100 flips stay inside one);
      it is kept as coded for comparability with ELR-style tables. `asym_superclass` is the
      honest variant.
    * digits, mnist (Patrini et al. 2017): each sample of 7, 2, 5, 6, 3 with probability r moves
      to 1, 7, 6, 5, 8 respectively.
    """
    family, labels = dataset.family, dataset.y_train
    if family == "cifar10":
        _need_classes("asym", dataset, 10)
        return map_exact_count(labels, ratio, class_map(10, CIFAR10_ASYM), rng)
    if family == "cifar100":
        _need_classes("asym", dataset, 100)
        return flip_by_map(labels, ratio, block5_targets(100), rng)
    if family in _DIGIT_FAMILIES:
        _need_classes("asym", dataset, 10)
        return flip_by_map(labels, ratio, class_map(10, DIGITS_ASYM), rng)
    raise DataError(
        f"noise model 'asym' has no class map for dataset family '{family}'; "
        "use sym, sym_flip, pairflip or instance"
    )


def superclass_targets(labels: np.ndarray, coarse: np.ndarray, num_classes: int) -> np.ndarray:
    """Next fine class (by index, cyclically) within each fine class's true coarse superclass."""
    targets = np.arange(num_classes, dtype=np.int64)
    pairs = np.unique(np.stack([labels, coarse], axis=1), axis=0)
    fine, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        raise DataError(
            f"fine class {int(fine[counts > 1][0])} appears under several coarse labels; "
            "dataset.coarse_train does not match y_train"
        )
    for group in np.unique(pairs[:, 1]):
        members = np.sort(pairs[pairs[:, 1] == group, 0])
        targets[members] = np.roll(members, -1)
    return targets


def _asym_moved(family: str) -> float:
    """The fraction of classes `asym` moves on `family` (CIFAR-10 and the digits 5 of 10, the
    blocks of 5 of CIFAR-100 all); 1 for a family it has no map for (it refuses to draw there)."""
    if family == "cifar10":
        return _moved(class_map(10, CIFAR10_ASYM))
    if family in _DIGIT_FAMILIES:
        return _moved(class_map(10, DIGITS_ASYM))
    return 1.0


@_register("asym_superclass", facts=lambda r, c, family: NoiseFacts(r, True))
def _asym_superclass(dataset: Dataset, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each label with probability r to the next class of its TRUE superclass (CIFAR-100).

    The honest version of CIFAR-100 "asym": it uses the dataset's real coarse labels (as Google's
    ciw_label_noise does) instead of alphabetical blocks of 5, and draws per sample like JoCoR.
    Within a superclass the fine classes, sorted by index, form a cycle.
    """
    if dataset.coarse_train is None:
        raise DataError(
            f"noise model 'asym_superclass' needs true superclasses (dataset.coarse_train), which "
            f"dataset '{dataset.name}' lacks; load cifar100 or use asym"
        )
    coarse = np.asarray(dataset.coarse_train, dtype=np.int64)
    if coarse.shape != dataset.y_train.shape:
        raise DataError(
            f"dataset '{dataset.name}' has {len(coarse)} coarse labels for "
            f"{len(dataset.y_train)} training labels"
        )
    targets = superclass_targets(dataset.y_train, coarse, dataset.num_classes)
    return flip_by_map(dataset.y_train, ratio, targets, rng)


def truncated_normal(mean: float, sd: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` draws of N(mean, sd) truncated to [0, 1], by rejection with the Generator.

    Rejection (as CORES does) keeps the draw a function of the seed alone: scipy's truncnorm would
    tie the labels to scipy's sampling algorithm, which has changed between releases.
    """
    out = np.empty(count, dtype=np.float64)
    filled = 0
    while filled < count:
        draws = rng.normal(mean, sd, size=count)
        kept = draws[(draws >= 0.0) & (draws <= 1.0)][: count - filled]
        out[filled : filled + len(kept)] = kept
        filled += len(kept)
    return out


def instance_dependent(
    labels: np.ndarray,
    images: np.ndarray,
    ratio: float,
    num_classes: int,
    rng: np.random.Generator,
    norm_std: float = 0.1,
) -> np.ndarray:
    """Xia et al. 2020 (PTD) instance-dependent noise with mean flip rate ≈ ratio.

    q_i ~ TruncNormal(ratio, norm_std) on [0, 1]; W[c] ~ N(0, 1) of shape d x C, one per true
    class; p = x_i W[y_i], p[y_i] = -inf, p = q_i softmax(p), p[y_i] = 1 - q_i; draw from p.
    The result depends on x's layout and scale, so we fix them as
    the image flattened in CHW order (our storage order) and scaled to 0..1. Draw order: q, then
    one uniform per sample, then W[0], W[1], ... class by class, each applied to that class's
    samples at once.
    """
    count = len(labels)
    q = truncated_normal(ratio, norm_std, count, rng)
    uniforms = rng.random(count)
    flat = images.reshape(count, -1)
    noisy = labels.copy()
    for cls in range(num_classes):
        weights = rng.standard_normal((flat.shape[1], num_classes))
        rows = np.flatnonzero(labels == cls)
        if len(rows) == 0:
            continue
        logits = (flat[rows].astype(np.float64) / 255.0) @ weights
        logits[:, cls] = -np.inf
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs *= (q[rows] / probs.sum(axis=1))[:, None]
        probs[:, cls] = 1.0 - q[rows]
        below = np.cumsum(probs, axis=1) <= uniforms[rows, None]
        noisy[rows] = np.minimum(below.sum(axis=1), num_classes - 1)
    return noisy


@_register("instance", facts=lambda r, c, family: NoiseFacts(r, False))
def _instance(
    dataset: Dataset,
    ratio: float,
    rng: np.random.Generator,
    *,
    norm_std: Annotated[float, Field(ge=0)] = 0.1,
) -> np.ndarray:
    """Instance-dependent noise, mean flip rate ≈ r (Xia et al. 2020, PTD's generator).

    PTD convention with one projection per true class; `norm_std` is PTD's spread of the
    per-image flip rate. At r = 0 the truncation still leaves a mean rate of about 0.08.
    """
    return instance_dependent(
        dataset.y_train, dataset.x_train, ratio, dataset.num_classes, rng, float(norm_std)
    )


# key -> (family it belongs to, array name in the CIFAR-N file)
CIFARN_KEYS = {
    "aggre": ("cifar10", "aggre_label"),
    "random1": ("cifar10", "random_label1"),
    "random2": ("cifar10", "random_label2"),
    "random3": ("cifar10", "random_label3"),
    "worst": ("cifar10", "worse_label"),
    "noisy100": ("cifar100", "noisy_label"),
}


def _integer_labels(array: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A 1-D array of whole-number labels as int64; fractional or non-numeric labels are refused
    (casting would truncate 3.7 to 3 and silently change the noise)."""
    array = np.asarray(array)
    whole = np.issubdtype(array.dtype, np.integer) or (
        np.issubdtype(array.dtype, np.floating) and bool(np.all(np.mod(array, 1) == 0))
    )
    if array.ndim != 1 or not whole:
        raise DataError(
            f"CIFAR-N '{name}' in {path} has dtype {array.dtype} and shape {array.shape}; "
            "expected a 1-D array of whole-number class labels"
        )
    return array.astype(np.int64)


def _read_label_file(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a CIFAR-N file: .npz without pickle, or the original .pt when asked for."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read CIFAR-N file {path} ({err}); expected an .npz") from err
    if path.suffix == ".pt":
        import torch

        # The official .pt holds numpy arrays, which torch >= 2.6 refuses with weights_only=True;
        # the user chose this file, and the .npz conversion is the safe default.
        try:
            content = torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
            raise DataError(f"cannot read CIFAR-N file {path} ({err}); try the .npz") from err
        if not isinstance(content, dict):
            raise DataError(f"CIFAR-N file {path} does not hold a dict of label arrays")
        return {str(key): np.asarray(value) for key, value in content.items()}
    raise DataError(f"CIFAR-N file {path} must be .npz (preferred) or .pt")


@_register("given", takes_ratio=False)
def _given(dataset: Dataset, ratio: None, rng: np.random.Generator) -> np.ndarray:
    """The dataset's own training labels, as collected (ANIMAL-10N, Clothing1M, WebVision).

    No noise is drawn. On a real-world dataset (`clean_train` False) `apply_noise` returns them
    unmeasured: no clean labels, so the realised rate is unknown and recorded as such, not 0. On
    a dataset with clean labels this is the noise-free run (rate 0).
    """
    return dataset.y_train.copy()


@_register("cifarn", takes_ratio=False, files=("file",))
def _cifarn(
    dataset: Dataset,
    ratio: None,
    rng: np.random.Generator,
    *,
    file: str | None = None,
    key: str | None = None,
) -> np.ndarray:
    """Real human labels from a CIFAR-N file; the rate is read, not set (CIFAR-10N/100N).

    Rows are picked by dataset.train_index so subsets get their own images' labels, and the
    file's clean labels must equal the dataset's: a mismatch means the wrong file or a different
    image order, which would otherwise silently scramble the noise.
    """
    if key not in CIFARN_KEYS:
        hint = did_you_mean(key, CIFARN_KEYS) if isinstance(key, str) else ""
        raise DataError(
            f"cifarn needs option key= one of {', '.join(CIFARN_KEYS)} (got {key!r}){hint}"
        )
    family, array_name = CIFARN_KEYS[key]
    if dataset.family != family:
        raise DataError(
            f"CIFAR-N key '{key}' labels {family} but dataset '{dataset.name}' has "
            f"family '{dataset.family}'; pick a key for that family"
        )
    if file is None:
        raise DataError(
            "cifarn needs option file= the CIFAR-N label file (e.g. cifar10n_labels.npz)"
        )
    path = Path(file).expanduser()
    if not path.is_file():
        raise DataError(f"CIFAR-N file {path} does not exist; set the noise option file=PATH")
    arrays = _read_label_file(path)
    for needed in ("clean_label", array_name):
        if needed not in arrays:
            raise DataError(f"CIFAR-N file {path} has no '{needed}'; is it the {family}N file?")
    clean_all = _integer_labels(arrays["clean_label"], "clean_label", path)
    noisy_all = _integer_labels(arrays[array_name], array_name, path)
    if len(noisy_all) != len(clean_all):
        raise DataError(
            f"CIFAR-N '{array_name}' in {path} has {len(noisy_all)} labels but 'clean_label' has "
            f"{len(clean_all)}; the file is truncated or not a CIFAR-N label file"
        )
    rows = (
        dataset.train_index if dataset.train_index is not None else np.arange(len(dataset.y_train))
    )
    if len(rows) and (rows.min() < 0 or rows.max() >= len(clean_all)):
        needs = (
            f"train_index reaches {int(rows.max())}"
            if dataset.train_index is not None
            else f"has {len(rows)} training images"
        )
        raise DataError(
            f"dataset '{dataset.name}' {needs} but CIFAR-N file {path} has only "
            f"{len(clean_all)} labels; use the file of this dataset's full training set"
        )
    wrong = int((clean_all[rows] != dataset.y_train).sum())
    if wrong:
        raise DataError(
            f"CIFAR-N file {path} disagrees with dataset '{dataset.name}' on {wrong} of "
            f"{len(rows)} clean labels; wrong file, or images not in the standard train order "
            "(check dataset.train_index)"
        )
    noisy = noisy_all[rows]
    if len(noisy) and (noisy.min() < 0 or noisy.max() >= dataset.num_classes):
        raise DataError(
            f"CIFAR-N '{array_name}' in {path} has labels outside 0..{dataset.num_classes - 1}"
        )
    return noisy
