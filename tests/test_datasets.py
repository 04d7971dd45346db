"""Dataset loaders: registry, embedded digits, CIFAR pickles, idx files, npz, synthetic.

Every file-based loader is exercised on tiny fake files written by the test in the real format, so
the suite runs offline; tests on the shared real subsets skip when that folder is absent.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from nlbench.data.dataset import Dataset
from nlbench.data.datasets import DATASETS, channel_stats, load_dataset
from nlbench.data.idx import read_idx
from nlbench.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared"
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _pickle(path: Path, content: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=2)


def _rows(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """ROOT/cifar-10-batches-py with 5 train batches of 3 images, a test batch of 4, and meta."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _pickle(
            folder / f"data_batch_{i}",
            {"data": _rows(rng, 3), "labels": [i, (i + 1) % 10, (2 * i) % 10]},
        )
    _pickle(folder / "test_batch", {"data": _rows(rng, 4), "labels": [0, 1, 2, 3]})
    _pickle(folder / "batches.meta", {"label_names": CIFAR10_CLASSES})
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    _pickle(
        folder / "train",
        {
            "data": _rows(rng, 6),
            "fine_labels": [0, 5, 99, 4, 50, 1],
            "coarse_labels": [4, 17, 19, 0, 8, 1],
        },
    )
    _pickle(
        folder / "test", {"data": _rows(rng, 2), "fine_labels": [3, 7], "coarse_labels": [8, 7]}
    )
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [f"coarse{i}" for i in range(20)],
        },
    )
    return tmp_path


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """Fashion-MNIST-style folder: gzipped images, plain labels (both spellings must load)."""
    rng = np.random.default_rng(2)
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (5, 28, 28)), True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([9, 0, 0, 3, 0]))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (2, 28, 28)), True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2]))
    return tmp_path


# ---- registry ----


def test_every_dataset_has_a_one_line_doc() -> None:
    assert {"digits", "cifar10", "cifar100", "fashion_mnist", "mnist", "npz", "synthetic"} <= set(
        DATASETS
    )
    for info in DATASETS.values():
        assert info.doc and "\n" not in info.doc


def test_unknown_dataset_suggests_the_nearest_name() -> None:
    with pytest.raises(DataError, match="did you mean 'cifar10'"):
        load_dataset("cifar01")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(DataError, match=r"no option 'n_trian'.*did you mean 'n_train'"):
        load_dataset("synthetic", n_trian=10)


# ---- digits ----


def test_digits_is_uint8_nchw_with_a_stratified_split() -> None:
    data = load_dataset("digits")
    assert data.x_train.shape == (1257, 1, 8, 8) and data.x_test.shape == (540, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.x_train.max() == 255 and data.x_train.min() == 0
    assert (data.family, data.augment, data.num_classes) == ("digits", "none", 10)
    train_share = np.bincount(data.y_train) / np.bincount(
        np.concatenate([data.y_train, data.y_test])
    )
    assert np.allclose(train_share, 0.7, atol=0.02)
    assert np.allclose(data.mean, channel_stats(data.x_train)[0])
    again = load_dataset("digits")
    assert np.array_equal(data.x_train, again.x_train) and np.array_equal(data.y_test, again.y_test)


def test_digits_takes_no_root() -> None:
    with pytest.raises(DataError, match=r"drop dataset\.root"):
        load_dataset("digits", root="/tmp")


def test_channel_stats_match_numpy() -> None:
    images = np.random.default_rng(3).integers(0, 256, (7, 3, 4, 4), dtype=np.uint8)
    mean, std = channel_stats(images)
    scaled = images / 255.0
    assert np.allclose(mean, scaled.mean(axis=(0, 2, 3)))
    assert np.allclose(std, scaled.std(axis=(0, 2, 3)))


# ---- CIFAR ----


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_reads_the_pickles_in_order(cifar10_root: Path, nested: bool) -> None:
    root = cifar10_root if nested else cifar10_root / "cifar-10-batches-py"
    data = load_dataset("cifar10", root=str(root))
    assert data.x_train.shape == (15, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    assert data.y_train.dtype == np.int64
    assert data.y_train[:3].tolist() == [1, 2, 2] and data.y_train[-3:].tolist() == [5, 6, 0]
    assert list(data.classes) == CIFAR10_CLASSES
    assert data.mean == (0.4914, 0.4822, 0.4465) and data.std == (0.2023, 0.1994, 0.2010)
    assert (data.family, data.augment, data.coarse_train) == ("cifar10", "crop_flip", None)
    with (cifar10_root / "cifar-10-batches-py" / "data_batch_1").open("rb") as handle:
        first = pickle.load(handle, encoding="latin1")["data"][0]
    # Row-major CHW: the first 1024 bytes are the red plane, row by row.
    assert np.array_equal(data.x_train[0, 0, 0], first[:32])
    assert np.array_equal(data.x_train[0, 2, 31], first[-32:])


def test_cifar100_keeps_coarse_labels(cifar100_root: Path) -> None:
    data = load_dataset("cifar100", root=str(cifar100_root))
    assert data.x_train.shape == (6, 3, 32, 32) and data.num_classes == 100
    assert data.y_train.tolist() == [0, 5, 99, 4, 50, 1]
    assert data.coarse_train is not None and data.coarse_train.tolist() == [4, 17, 19, 0, 8, 1]
    assert data.classes[99] == "fine99" and data.mean == (0.507, 0.487, 0.441)


def test_cifar_without_root_says_to_set_it() -> None:
    with pytest.raises(DataError, match=r"dataset\.root"):
        load_dataset("cifar10")


def test_cifar_missing_root_names_path_and_expected_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"nowhere.*cifar-10-batches-py/data_batch_1\.\.5"):
        load_dataset("cifar10", root=str(missing))


def test_cifar_folder_without_batches_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cifar-100-python folder"):
        load_dataset("cifar100", root=str(tmp_path))


def test_cifar_missing_batch_file_is_named(cifar10_root: Path) -> None:
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR file .*data_batch_3"):
        load_dataset("cifar10", root=str(cifar10_root))


def test_cifar_corrupt_file_is_a_data_error(cifar10_root: Path) -> None:
    (cifar10_root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"cannot read CIFAR file .*test_batch"):
        load_dataset("cifar10", root=str(cifar10_root))


# ---- idx ----


def test_fashion_mnist_reads_plain_and_gzipped_idx(idx_root: Path) -> None:
    data = load_dataset("fashion_mnist", root=str(idx_root))
    assert data.x_train.shape == (5, 1, 28, 28) and data.x_test.shape == (2, 1, 28, 28)
    assert data.y_train.tolist() == [9, 0, 0, 3, 0] and data.y_train.dtype == np.int64
    assert data.classes[9] == "Ankle boot" and data.family == "fashion_mnist"
    with gzip.open(idx_root / "train-images-idx3-ubyte.gz", "rb") as handle:
        raw = handle.read()
    assert np.array_equal(data.x_train[1, 0].ravel(), np.frombuffer(raw, np.uint8, 784, 16 + 784))


def test_mnist_uses_the_same_reader(idx_root: Path) -> None:
    data = load_dataset("mnist", root=str(idx_root))
    assert data.family == "mnist" and data.classes == tuple("0123456789")


def test_mnist_needs_a_root() -> None:
    with pytest.raises(DataError, match=r"dataset\.root"):
        load_dataset("mnist")


def test_idx_missing_file_is_named(idx_root: Path) -> None:
    (idx_root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root=str(idx_root))


def test_idx_bad_magic_and_truncation_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    _write_idx(short, np.zeros((4, 2, 2)))
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(DataError, match="header"):
        read_idx(short)


# ---- npz ----


def _save_npz(path: Path, x_train: np.ndarray, x_test: np.ndarray, **extra: np.ndarray) -> Path:
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(len(x_train)) % 3,
        x_test=x_test,
        y_test=np.arange(len(x_test)) % 3,
        **extra,
    )
    return path


@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW"])
def test_npz_detects_the_image_layout(tmp_path: Path, layout: str) -> None:
    nchw = np.random.default_rng(4).integers(0, 256, (6, 3, 5, 4), dtype=np.uint8)
    if layout == "NHW":
        nchw = nchw[:, :1]
    stored = {"NHWC": nchw.transpose(0, 2, 3, 1), "NCHW": nchw, "NHW": nchw[:, 0]}[layout]
    path = _save_npz(tmp_path / "mine.npz", stored, stored[:2])
    data = load_dataset("npz", path=str(path))
    assert np.array_equal(data.x_train, nchw) and data.x_test.shape == (2, *nchw.shape[1:])
    assert (data.name, data.family, data.num_classes) == ("mine", "npz", 3)


def test_npz_keeps_classes_train_index_and_family(tmp_path: Path) -> None:
    images = np.zeros((4, 2, 2, 3), dtype=np.uint8)
    path = _save_npz(
        tmp_path / "sub.npz",
        images,
        images,
        train_index=np.array([0, 5, 6, 9]),
        classes=np.array(list("abcdefghij")),
    )
    data = load_dataset("npz", path=str(path), family="cifar10", augment="crop_flip")
    assert data.classes == tuple("abcdefghij") and data.train_index.tolist() == [0, 5, 6, 9]
    assert (data.family, data.augment) == ("cifar10", "crop_flip")


def test_npz_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("npz", path=str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match="needs its file"):
        load_dataset("npz")
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="lacks x_test, y_test"):
        load_dataset("npz", path=str(partial))
    floats = _save_npz(tmp_path / "floats.npz", np.zeros((3, 4, 4)), np.zeros((3, 4, 4)))
    with pytest.raises(DataError, match="expected uint8"):
        load_dataset("npz", path=str(floats))
    good = _save_npz(
        tmp_path / "good.npz", np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4), np.uint8)
    )
    with pytest.raises(DataError, match="augment"):
        load_dataset("npz", path=str(good), augment="mixup")


@pytest.mark.skipif(
    not (SHARED / "data" / "cifar10_subset").is_dir(), reason="shared/data/cifar10_subset absent"
)
def test_shared_cifar10_subset_loads_as_cifar10_family() -> None:
    data = load_dataset(
        "npz",
        path=str(SHARED / "data/cifar10_subset/cifar10_subset.npz"),
        family="cifar10",
        augment="crop_flip",
    )
    assert data.x_train.shape == (10000, 3, 32, 32) and data.x_test.shape == (2000, 3, 32, 32)
    assert data.y_train[:5].tolist() == [6, 9, 9, 4, 1] and data.classes[3] == "cat"
    assert np.allclose(data.mean, (0.493, 0.483, 0.447), atol=1e-3)
    assert data.train_index is not None and data.train_index.max() == 10710


# ---- synthetic ----


def test_synthetic_is_deterministic_in_its_seed() -> None:
    one = load_dataset(
        "synthetic", n_train=50, n_test=20, num_classes=4, size=6, channels=3, seed=7
    )
    two = load_dataset(
        "synthetic", n_train=50, n_test=20, num_classes=4, size=6, channels=3, seed=7
    )
    other = load_dataset(
        "synthetic", n_train=50, n_test=20, num_classes=4, size=6, channels=3, seed=8
    )
    assert isinstance(one, Dataset) and one.x_train.shape == (50, 3, 6, 6)
    assert one.x_train.dtype == np.uint8 and one.num_classes == 4
    assert np.array_equal(one.x_train, two.x_train) and np.array_equal(one.y_test, two.y_test)
    assert not np.array_equal(one.x_train, other.x_train)
    assert np.bincount(one.y_train).tolist() == [13, 13, 12, 12]


def test_synthetic_classes_are_separable() -> None:
    data = load_dataset("synthetic", n_train=400, n_test=200, separation=6.0)
    train = data.x_train.reshape(len(data.x_train), -1).astype(float)
    test = data.x_test.reshape(len(data.x_test), -1).astype(float)
    centroids = np.stack([train[data.y_train == c].mean(0) for c in range(data.num_classes)])
    nearest = ((test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == data.y_test).mean() > 0.9


def test_synthetic_rejects_bad_values() -> None:
    with pytest.raises(DataError, match="num_classes"):
        load_dataset("synthetic", num_classes=1)
    with pytest.raises(DataError, match="separation"):
        load_dataset("synthetic", separation=-1.0)


def test_npz_file_is_an_option_not_a_root(tmp_path):
    """The file is the data: as an option it enters the run id, as a root it would not."""
    with pytest.raises(DataError, match="options.path"):
        load_dataset("npz", root=str(tmp_path / "x.npz"))


def test_cifar_to_npz_writes_a_stratified_subset_the_npz_loader_reads(fake_cifar, tmp_path):
    import runpy
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "cifar_to_npz.py"
    out = tmp_path / "subset.npz"
    argv = ["cifar_to_npz.py", "--dataset", "cifar10", "--root", str(fake_cifar), "--out",
            str(out), "--train", "20", "--test", "10"]  # fmt: skip
    old, sys.argv = sys.argv, argv
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old
    full = load_dataset("cifar10", str(fake_cifar))
    data = load_dataset("npz", path=str(out), family="cifar10")
    assert len(data.y_train) == 20 and np.bincount(data.y_train).tolist() == [2] * 10
    assert np.array_equal(data.x_train, full.x_train[data.train_index])
    assert np.array_equal(data.y_train, full.y_train[data.train_index])


def test_list_prints_each_dataset_method_and_noise_model_as_a_whole_sentence(capsys):
    from nlbench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    body = out.split("networks:")[0]
    described = [line for line in body.splitlines() if line.startswith("  ")]
    assert len(described) > 30
    cut = [line for line in described if not line.rstrip().endswith((".", ")"))]
    assert cut == []  # the WebVision line once stopped at "tested on its"


@pytest.mark.parametrize(
    "options, needle",
    [
        ("{n_train: yes}", "option n_train=True: Input should be a valid integer"),
        ("{n_train: 0}", "option n_train=0: Input should be greater than or equal to 1"),
        ("{separation: .nan}", "option separation=nan: Input should be a finite number"),
        ("{n_trian: 5}", "has no option 'n_trian' (did you mean 'n_train'?)"),
    ],
)
def test_dataset_options_are_checked_when_the_suite_loads(options, needle, write_suite, capsys):
    """One option system: a loader's signature is its options model, so a bad option stops even
    `--dry-run`, before any data is read, with one line."""
    from nlbench.cli import main

    suite = write_suite(
        f"name: o\ndatasets: [{{name: synthetic, options: {options}}}]\n"
        "noise: [{model: sym, ratios: [0.2]}]\nmethods: [ce]\n"
    )
    assert main(["run", str(suite), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err and "dataset 'synthetic'" in err


def test_every_registry_answers_an_unknown_name_the_same_way():
    from nlbench.data.noise import NOISE_MODELS
    from nlbench.errors import NlbenchError
    from nlbench.methods.api.protocols import PROTOCOLS
    from nlbench.methods.toolkit.networks import NETWORKS
    from nlbench.methods.toolkit.views import RECIPES, VIEWS

    for registry, near in ((DATASETS, "cifar1O"), (NOISE_MODELS, "symm"), (NETWORKS, "mlpp"),
                           (VIEWS, "weakk"), (RECIPES, "crop_fli"), (PROTOCOLS, "jocr")):  # fmt: skip
        with pytest.raises(NlbenchError) as err:
            registry.lookup(near)
        line = str(err.value)
        assert line.startswith(f"unknown {registry.kind} '{near}' (did you mean '")
        assert "; known: " in line and "\n" not in line
