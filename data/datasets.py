"""The dataset registry: every loader by name, with the one-line doc `list` prints.

Loaders return the shared `Dataset` (uint8 NCHW images, int64 labels). Each one validates its input
and raises `DataError` with a single line naming the path or option at fault, because that line is
all a user sees when a suite points at the wrong folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from nlbench.data.cifar import CIFAR10, CIFAR100, load_cifar
from nlbench.data.dataset import Dataset
from nlbench.data.idx import read_idx_folder
from nlbench.data.realworld import load_animal10n, load_clothing1m, load_webvision
from nlbench.errors import DataError
from nlbench.registry import Registry, first_sentence, options_model, validate_options

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
AUGMENTS = ("crop_flip", "none")
FAMILY_CLASSES = {"cifar10": 10, "cifar100": 100, "mnist": 10, "fashion_mnist": 10, "digits": 10}
"""Label spaces an `npz` file can declare with `family`: its labels must lie inside them."""


@dataclass(frozen=True)
class DatasetInfo:
    """A registered loader: `doc` is the line `list` prints, `options_model` the pydantic model
    of the keyword options it takes (from its signature: `registry.options_model`)."""

    name: str
    doc: str
    loader: Callable[..., Dataset]
    options_model: type[BaseModel]
    files: tuple[str, ...] = ()
    folder: bool = False
    """Its root is a folder of images (identified by its listing, `files.folder_manifest`)."""

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.options_model.model_fields)


DATASETS: Registry[DatasetInfo] = Registry("dataset", DataError)
Count = Annotated[int, Field(ge=1)]
"""A dataset option that counts something: an integer >= 1 (a YAML `yes` is no count)."""


def _register(
    name: str, files: tuple[str, ...] = (), folder: bool = False
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Register a loader; `files` names its options that are data files (identified by content),
    `folder` says its root is a folder of images (identified by its listing)."""

    def wrap(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        model = options_model(loader, name)
        DATASETS.add(name, DatasetInfo(name, first_sentence(loader.__doc__), loader, model, files,
                                       folder))  # fmt: skip
        return loader

    return wrap


def load_dataset(name: str, root: str | None = None, **options: Any) -> Dataset:
    """Load the registered dataset `name` from `root` (a folder or file, when it needs one)."""
    info = DATASETS.lookup(name)
    return info.loader(root, **validate_options(info.options_model, "dataset", name, options,
                                                DataError))  # fmt: skip


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images on the 0..1 scale.

    Computed from a 256-bin histogram per channel: exact, and it never materialises a float copy
    of a CIFAR-sized array.
    """
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255.0
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.float64)
        mean = float(counts @ values / counts.sum())
        means.append(mean)
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
    return tuple(means), tuple(stds)


def _no_root(name: str, root: str | None) -> None:
    if root is not None:
        raise DataError(
            f"dataset '{name}' is built in and reads no files; drop dataset.root (got {root!r})"
        )


@_register("digits")
def _digits(root: str | None) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images), embedded: the default quick dataset.

    It ships inside scikit-learn, so a fresh checkout can run a suite with no download. The split
    is stratified with a fixed seed and both halves keep the original order, so every machine
    trains on the same images.
    """
    _no_root("digits", root)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * 255.0 / 16.0).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.3, random_state=0, stratify=labels
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    x_train = images[train_idx]
    mean, std = channel_stats(x_train)
    return Dataset(
        name="digits",
        family="digits",
        x_train=x_train,
        y_train=labels[train_idx],
        x_test=images[test_idx],
        y_test=labels[test_idx],
        classes=tuple(str(c) for c in range(10)),
        mean=mean,
        std=std,
        augment="none",
        train_index=train_idx.astype(np.int64),
    )


@_register("cifar10")
def _cifar10(root: str | None) -> Dataset:
    """CIFAR-10 from a local cifar-10-batches-py folder (python pickle format), 50k/10k 32x32."""
    return load_cifar(CIFAR10, root)


@_register("cifar100")
def _cifar100(root: str | None) -> Dataset:
    """CIFAR-100 from a local cifar-100-python folder, fine labels, coarse ones kept for noise."""
    return load_cifar(CIFAR100, root)


def _from_idx(root: str | None, name: str, family: str, classes: tuple[str, ...]) -> Dataset:
    arrays = read_idx_folder(root, name)
    x_train = arrays["x_train"][:, None]
    mean, std = channel_stats(x_train)
    return Dataset(
        name=name,
        family=family,
        x_train=x_train,
        y_train=arrays["y_train"],
        x_test=arrays["x_test"][:, None],
        y_test=arrays["y_test"],
        classes=classes,
        mean=mean,
        std=std,
        augment="none",
    )


@_register("fashion_mnist")
def _fashion_mnist(root: str | None) -> Dataset:
    """Fashion-MNIST from idx files (optionally .gz); default root is Debian's package folder.

    Debian's dataset-fashion-mnist installs the files under /usr/share/datasets/fashion-mnist, so
    on such a machine the dataset needs no configuration at all.
    """
    return _from_idx(root or FASHION_MNIST_ROOT, "fashion_mnist", "fashion_mnist", FASHION_CLASSES)


@_register("mnist")
def _mnist(root: str | None) -> Dataset:
    """MNIST from a folder of the four standard idx files (optionally .gz)."""
    return _from_idx(root, "mnist", "mnist", tuple(str(c) for c in range(10)))


def _npz_images(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    """uint8 NCHW from NHW, NHWC or NCHW; HWC when the last axis is 1 or 3 and the second is not."""
    if array.dtype != np.uint8:
        raise DataError(f"'{key}' in {path} has dtype {array.dtype}; expected uint8 images 0..255")
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise DataError(
            f"'{key}' in {path} has shape {array.shape}; expected NHW, NHWC or NCHW images"
        )
    if array.shape[3] in (1, 3) and array.shape[1] not in (1, 3):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return array


def _npz_labels(array: np.ndarray, key: str, path: Path, count: int) -> np.ndarray:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(
            f"'{key}' in {path} has shape {array.shape} and dtype {array.dtype}; "
            "expected a 1-D integer array"
        )
    if len(array) != count:
        raise DataError(f"'{key}' in {path} has {len(array)} labels for {count} images")
    if len(array) and array.min() < 0:
        raise DataError(f"'{key}' in {path} holds negative labels; expected 0..C-1")
    return array.astype(np.int64)


def _npz_file(root: str | None, path: str | None) -> Path:
    """The file is the data itself, so it is an option (part of the run id), never a root."""
    if root is not None:
        raise DataError(
            "dataset 'npz' takes its file as options.path, not root: pass "
            "--set dataset.options.path=FILE.npz"
        )
    if path is None:
        raise DataError("dataset 'npz' needs its file; pass --set dataset.options.path=FILE.npz")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"npz file {file} does not exist; pass --set dataset.options.path=FILE.npz")
    return file


@_register("npz", files=("path",))
def _npz(
    root: str | None,
    *,
    path: str | None = None,
    family: str = "npz",
    augment: str = "none",
    first_train: Count | None = None,
    first_test: Count | None = None,
) -> Dataset:
    """Your own arrays: an .npz with x_train, y_train, x_test, y_test [, train_index, classes].

    `family` names the label space so that class maps and CIFAR-N apply to a subset (family
    "cifar10" for a subset of CIFAR-10, e.g. one written by scripts/cifar_to_npz.py); the dataset is named after the file's stem so two
    files never share a leaderboard row. mean/std come from the training images.
    `first_train` / `first_test` keep only the first N images of each split (smoke tests).
    """
    file = _npz_file(root, path)
    if augment not in AUGMENTS:
        raise DataError(f"npz augment '{augment}' is not one of {', '.join(AUGMENTS)}")
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read npz file {file} ({err}); expected a numpy .npz") from err
    with archive:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive]
        if missing:
            raise DataError(
                f"npz file {file} lacks {', '.join(missing)}; it needs x_train, "
                "y_train, x_test and y_test"
            )
        train, test = slice(first_train), slice(first_test)
        x_train = _npz_images(archive["x_train"][train], "x_train", file)
        x_test = _npz_images(archive["x_test"][test], "x_test", file)
        y_train = _npz_labels(archive["y_train"][train], "y_train", file, len(x_train))
        y_test = _npz_labels(archive["y_test"][test], "y_test", file, len(x_test))
        train_index = archive.get("train_index")
        train_index = None if train_index is None else train_index[train]
        names = archive.get("classes")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"npz file {file}: train images {x_train.shape[1:]} and test images "
            f"{x_test.shape[1:]} differ in shape"
        )
    if train_index is not None:
        train_index = _npz_labels(train_index, "train_index", file, len(x_train))
    top = int(max(y_train.max(initial=-1), y_test.max(initial=-1)))
    declared = None if names is None else tuple(str(c) for c in np.asarray(names).ravel())
    size = FAMILY_CLASSES.get(family, len(declared) if declared is not None else top + 1)
    if declared is not None and len(declared) != size:
        raise DataError(
            f"npz file {file} names {len(declared)} classes but family '{family}' has {size}"
        )
    if top >= size:
        where = f"family '{family}'" if family in FAMILY_CLASSES else "its 'classes' array"
        raise DataError(
            f"npz file {file} has label {top}, but {where} has {size} classes (0..{size - 1}); "
            "fix the labels or the family option"
        )
    classes = declared or tuple(str(c) for c in range(size))
    mean, std = channel_stats(x_train)
    return Dataset(
        name=file.stem,
        family=family,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=classes,
        mean=mean,
        std=std,
        augment=augment,
        train_index=train_index,
    )


@_register("synthetic")
def _synthetic(
    root: str | None,
    *,
    n_train: Count = 1000,
    n_test: Count = 500,
    num_classes: Annotated[int, Field(ge=2)] = 10,
    size: Count = 8,
    channels: Count = 1,
    seed: Annotated[int, Field(ge=0)] = 0,
    separation: Annotated[float, Field(ge=0)] = 3.0,
    augment: str = "none",
) -> Dataset:
    """Gaussian class clusters drawn as small images: instant, seeded data for tests and checks.

    Each class has a random centre of norm `separation` in pixel space and every image is its
    centre plus unit Gaussian noise, mapped to uint8 around 128; larger `separation` makes the task
    easier. Only numpy's seeded Generator is used, so the same options give the same bytes.
    `augment: crop_flip` with size 32 and 3 channels gives CIFAR-shaped data for timing the
    CIFAR recipes without the dataset.
    """
    _no_root("synthetic", root)
    if augment not in AUGMENTS:
        raise DataError(f"synthetic option augment={augment!r}; use one of {', '.join(AUGMENTS)}")
    rng = np.random.default_rng(seed)
    dim = channels * size * size
    centres = rng.standard_normal((num_classes, dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(count, dtype=np.int64) % num_classes)
        points = centres[labels] + rng.standard_normal((count, dim))
        pixels = np.clip(np.rint(128.0 + 40.0 * points), 0, 255).astype(np.uint8)
        return pixels.reshape(count, channels, size, size), labels

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    mean, std = channel_stats(x_train)
    return Dataset(
        name="synthetic",
        family="synthetic",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=tuple(f"class{c}" for c in range(num_classes)),
        mean=mean,
        std=std,
        augment=augment,
    )


_register("animal10n", folder=True)(load_animal10n)
_register("clothing1m", folder=True)(load_clothing1m)
_register("webvision", folder=True)(load_webvision)
