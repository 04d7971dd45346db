"""CIFAR-10 and CIFAR-100 from a local folder in the standard python-pickle format.

We read the pickles ourselves because torchvision's CIFAR classes check the files' md5 even with
download=False, which rejects the small fake folders the tests build; reading them directly is a few
lines and lets every failure name the exact missing file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlbench.data.dataset import Dataset
from nlbench.errors import DataError


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR variant keeps its files and labels, and the normalisation its recipes use."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def expected(self, folder: Path) -> str:
        """The hint every missing-file error ends with: what the folder must hold."""
        files = f"{_describe(self.train_files)}, {self.test_file} and {self.meta_file}"
        return f"expected {folder}/{files}; pass --set dataset.root=PATH"


def _describe(files: tuple[str, ...]) -> str:
    if len(files) == 1:
        return files[0]
    return f"{files[0][:-1]}1..{len(files)}"


# mean/std are the constants of the SSR official code (and most CIFAR recipes it inherits from), so
# paper suites normalise exactly as the papers did.
CIFAR10 = _Layout(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)
CIFAR100 = _Layout(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    mean=(0.507, 0.487, 0.441),
    std=(0.267, 0.256, 0.276),
)


def _resolve(layout: _Layout, root: str | Path | None) -> Path:
    """The folder holding the batch files: ROOT/<folder> or ROOT itself, whichever has them."""
    if root is None:
        raise DataError(
            f"dataset '{layout.name}' needs its local folder; pass --set dataset.root=PATH "
            f"(the folder holding {layout.folder}/)"
        )
    base = Path(root).expanduser()
    if not base.exists():
        hint = layout.expected(base / layout.folder)
        raise DataError(f"{layout.name} root {base} does not exist; {hint}")
    nested = base / layout.folder
    if nested.is_dir():
        return nested
    if (base / layout.test_file).is_file() or base.name == layout.folder:
        return base
    raise DataError(f"no {layout.folder} folder in {base}; {layout.expected(nested)}")


def _unpickle(path: Path, layout: _Layout) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"missing CIFAR file {path}; {layout.expected(path.parent)}")
    try:
        with path.open("rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as err:
        raise DataError(f"cannot read CIFAR file {path} ({err}); re-download the dataset") from err
    if not isinstance(content, dict):
        raise DataError(f"CIFAR file {path} does not hold a dict; is it the python version?")
    return content


def _field(content: dict[str, Any], key: str, path: Path) -> Any:
    if key not in content:
        raise DataError(f"CIFAR file {path} has no '{key}' entry; is it the python version?")
    return content[key]


def _images(content: dict[str, Any], path: Path) -> np.ndarray:
    """N x 3072 rows, each the R, G then B plane of a 32x32 image, reshaped to N x 3 x 32 x 32."""
    data = np.asarray(_field(content, "data", path), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"CIFAR file {path} holds data of shape {data.shape}; expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32)


def _split(
    layout: _Layout, folder: Path, files: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Images, labels and (CIFAR-100 only) coarse labels of the files concatenated in order."""
    images, labels, coarse = [], [], []
    for name in files:
        path = folder / name
        content = _unpickle(path, layout)
        images.append(_images(content, path))
        labels.append(np.asarray(_field(content, layout.label_key, path), dtype=np.int64))
        if len(labels[-1]) != len(images[-1]):
            raise DataError(
                f"CIFAR file {path} has {len(images[-1])} images but "
                f"{len(labels[-1])} labels; re-download the dataset"
            )
        if layout is CIFAR100:
            coarse.append(np.asarray(_field(content, "coarse_labels", path), dtype=np.int64))
    merged_coarse = np.concatenate(coarse) if coarse else None
    return np.concatenate(images), np.concatenate(labels), merged_coarse


def load_cifar(layout: _Layout, root: str | Path | None) -> Dataset:
    """The full CIFAR train and test sets, in the standard order (the one CIFAR-N labels follow)."""
    folder = _resolve(layout, root)
    meta_path = folder / layout.meta_file
    classes = tuple(
        str(c) for c in _field(_unpickle(meta_path, layout), layout.names_key, meta_path)
    )
    x_train, y_train, coarse_train = _split(layout, folder, layout.train_files)
    x_test, y_test, _ = _split(layout, folder, (layout.test_file,))
    return Dataset(
        name=layout.name,
        family=layout.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=classes,
        mean=layout.mean,
        std=layout.std,
        augment="crop_flip",
        coarse_train=coarse_train,
    )
