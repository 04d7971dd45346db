"""MNIST-style idx files, read with numpy alone.

Parsing the idx header ourselves (a few lines) avoids torchvision's download-and-md5 machinery, so a
test's tiny fake file and a distribution's packaged copy (Debian's dataset-fashion-mnist, gzipped)
load the same way.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from nlbench.errors import DataError

# idx type byte -> big-endian numpy dtype (LeCun's format description).
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_SPLIT_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one idx file (gzipped when the name ends in .gz), in native byte order.

    The header is two zero bytes, a type byte, a dimension count, then one big-endian uint32 per
    dimension; a file whose length disagrees with its header is rejected rather than silently
    truncated, since a half-downloaded file is the usual culprit.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise DataError(f"cannot read idx file {path} ({err}); re-download it") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an idx file (bad magic number); re-download it")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its idx header; re-download it")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its idx header {shape} implies {expected}; "
            "re-download it"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"missing {folder / stem}[.gz]: expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz) in that folder; "
        "pass --set dataset.root=PATH"
    )


def read_idx_folder(root: str | Path | None, name: str) -> dict[str, np.ndarray]:
    """The four standard idx arrays in `root` (MNIST and Fashion-MNIST share the file names).

    Returns x_train/x_test as uint8 (N, H, W) and y_train/y_test as int64, checked to agree.
    """
    if root is None:
        raise DataError(
            f"dataset '{name}' needs the folder holding its idx files; pass --set dataset.root=PATH"
        )
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"{name} folder {folder} does not exist; expected the idx files "
            "(train-images-idx3-ubyte etc.) there; pass --set dataset.root=PATH"
        )
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in _SPLIT_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{name} {split} idx files disagree: images {images.shape}, labels {labels.shape}; "
                "expected (N, H, W) images and N labels"
            )
    return {
        "x_train": arrays["x_train"].astype(np.uint8),
        "y_train": arrays["y_train"].astype(np.int64),
        "x_test": arrays["x_test"].astype(np.uint8),
        "y_test": arrays["y_test"].astype(np.int64),
    }
