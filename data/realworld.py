"""Real-world noisy datasets in their native layouts: ANIMAL-10N, Clothing1M, (mini-)WebVision.

Their training labels are the noisy ones as collected (`Dataset.clean_train` False: run them with
noise model `given`); their test labels are clean. Layouts, splits, normalisation and image sizes
follow the official SSR loaders and scripts (MrChenFeng/SSR_BMVC2022, `datasets/dataloader_*.py`
and `main_{animal10,clothing1m,webvision}.py`), which follow DivideMix's; where they differ from
the datasets' own documentation the docstrings say so. Every file a layout needs is checked before
anything is read, and a missing one is named in one line with the layout it belongs to.

Clothing1M and WebVision stay on disk (`ImageFiles`, decoded batch by batch by the engine's
workers); ANIMAL-10N's 55,000 64x64 images (600 MB) are decoded into memory unless `stream: true`.

Departures, all from decoding every image to one square so that batches stack and the crops run
on the device: Clothing1M and WebVision images decode to Resize(256 / 320) and their central
square, so the training crops (RandomCrop(224), RandomResizedCrop(299)) range over that square,
not over the whole resized image as the official transforms do (the same for square images; a
wide image loses its sides). The test view's CenterCrop(224) is then exact for Clothing1M;
WebVision's CenterCrop(299) can sit one pixel off the official one, as two centre crops round
twice. WebVision is scored top-1 only (the official script also logs top-5).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from nlbench.data.dataset import Dataset, EvalSet
from nlbench.data.image_files import ImageFiles, encode_paths
from nlbench.errors import DataError

ANIMAL10N_CLASSES = ("cat", "lynx", "wolf", "coyote", "cheetah", "jaguar", "chimpanzee",
                     "orangutan", "hamster", "guinea pig")  # fmt: skip
CLOTHING1M_CLASSES = ("T-shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie",
                      "Windbreaker", "Jacket", "Down Coat", "Suit", "Shawl", "Dress", "Vest",
                      "Underwear")  # fmt: skip
CLOTHING1M_MEAN, CLOTHING1M_STD = (0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _root(name: str, root: str | None, layout: str) -> Path:
    if root is None:
        raise DataError(f"dataset '{name}' reads {layout}; pass --set dataset.root=PATH")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"{name} folder {folder} does not exist; it should hold {layout}")
    return folder


def _need(path: Path, name: str, layout: str) -> Path:
    if not path.exists():
        raise DataError(f"{name}: {path} is missing; the layout is {layout}")
    return path


def _check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(
            f"{where} has label {int(labels[bad[0]])}, outside 0..{num_classes - 1}; "
            "fix the file or point dataset.root at the right dataset"
        )


# ---------------------------------------------------------------------------------- ANIMAL-10N

ANIMAL10N_LAYOUT = "training/ and testing/ folders of 64x64 images named <label>_<id>.jpg"


def _animal_folder(folder: Path) -> tuple[list[str], np.ndarray]:
    """Sorted image names and their labels, the integer before the first '_' of the file name
    (SSR `datasets/dataloader_animal10n.py`, which lists the folder unsorted; sorted here so the
    order is the same on every machine)."""
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise DataError(f"animal10n: {folder} holds no images; the layout is {ANIMAL10N_LAYOUT}")
    labels = []
    for name in names:
        head = name.split("_", 1)[0]
        if not head.isdigit():
            raise DataError(
                f"animal10n: {folder / name} is not named <label>_<id>.jpg; "
                f"the layout is {ANIMAL10N_LAYOUT}"
            )
        labels.append(int(head))
    array = np.array(labels, dtype=np.int64)
    bad = np.flatnonzero(array >= len(ANIMAL10N_CLASSES))
    if len(bad):
        raise DataError(
            f"animal10n: {folder / names[bad[0]]} has label {array[bad[0]]}, outside 0..9; "
            "ANIMAL-10N has 10 classes"
        )
    return [f"{folder.name}/{n}" for n in names], array


def load_animal10n(root: str | None, *, stream: bool = False) -> Dataset:
    """ANIMAL-10N (50,000 / 5,000 64x64 images, 10 animals, human label noise ~8 %), its folders.

    SSR's `main_animal10.py` trains on the images as they are, with no normalisation (mean 0,
    std 1 on the 0..1 scale) and its own augmentation recipe ("animal10n" in
    `methods.toolkit.views`). `stream: true` decodes batches from disk instead of holding the
    images in memory (same pixels, same numbers; as a dataset option it is part of the run id,
    so the two are separate runs).
    """
    folder = _root("animal10n", root, ANIMAL10N_LAYOUT)
    for part in ("training", "testing"):
        _need(folder / part, "animal10n", ANIMAL10N_LAYOUT)
    split = {}
    for part in ("training", "testing"):
        names, labels = _animal_folder(folder / part)
        files = ImageFiles(str(folder), encode_paths(names), size=64)
        split[part] = (files if stream else files.read(np.arange(len(files))).numpy(), labels)
    return Dataset(
        name="animal10n",
        family="animal10n",
        x_train=split["training"][0],
        y_train=split["training"][1],
        x_test=split["testing"][0],
        y_test=split["testing"][1],
        classes=ANIMAL10N_CLASSES,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        augment="animal10n",
        clean_train=False,
    )


# ---------------------------------------------------------------------------------- Clothing1M

CLOTHING1M_LAYOUT = (
    "noisy_label_kv.txt, noisy_train_key_list.txt, clean_label_kv.txt, clean_test_key_list.txt "
    "[, clean_val_key_list.txt] and the images/ they name"
)


def _labelled_lines(path: Path, name: str) -> Iterator[tuple[int, str, int]]:
    """(line number, path, label) of each `<relative path> <label>` line; blank lines skipped,
    any other line named as the culprit."""
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataError(f"{name}: {path} line {number} is not '<path> <label>'")
            yield number, parts[0], int(parts[1])


def _key_values(path: Path, name: str) -> dict[str, int]:
    """`<relative path> <label>` per line."""
    return {key: label for _, key, label in _labelled_lines(path, name)}


def _keys(path: Path) -> list[str]:
    with open(path) as handle:
        return [line.split()[0] for line in handle if line.strip()]


def _labelled(keys: list[str], table: dict[str, int], list_file: Path, kv_file: Path) -> np.ndarray:
    missing = [key for key in keys if key not in table]
    if missing:
        raise DataError(
            f"clothing1m: {missing[0]} of {list_file.name} has no label in {kv_file.name} "
            f"({len(missing)} keys lack one); use the files of one Clothing1M release"
        )
    return np.array([table[key] for key in keys], dtype=np.int64)


def load_clothing1m(
    root: str | None, *, epoch_samples: Annotated[int, Field(ge=1)] = 32000, val: bool = False
) -> Dataset:
    """Clothing1M (1M noisy train / 10,526 clean test images, 14 classes) from its list files.

    Paths in the lists are joined to the root unchanged, as SSR's loader does (DivideMix's strips
    'images/' and takes the images folder as its root). Every epoch trains on a fresh
    class-balanced subsample of `epoch_samples` noisy-train images (SSR: 1000 batches of 32), drawn
    by the engine with `data.image_files.class_balanced_subsample`. Images decode to
    Resize(256) and the central 256x256; the recipe crops 224 from that (see "clothing1m" in
    `methods.toolkit.views`). `val: true` loads the clean validation list as the dataset's
    validation set, for `selection: {split: dataset_val}` (SSR's script does not read it).
    """
    folder = _root("clothing1m", root, CLOTHING1M_LAYOUT)
    files = ["noisy_label_kv.txt", "noisy_train_key_list.txt", "clean_label_kv.txt",
             "clean_test_key_list.txt"] + (["clean_val_key_list.txt"] if val else [])  # fmt: skip
    paths = {f: _need(folder / f, "clothing1m", CLOTHING1M_LAYOUT) for f in files}
    noisy_kv = _key_values(paths["noisy_label_kv.txt"], "clothing1m")
    clean_kv = _key_values(paths["clean_label_kv.txt"], "clothing1m")
    classes = len(CLOTHING1M_CLASSES)

    def split(list_name: str, kv_name: str, table: dict[str, int]) -> tuple[ImageFiles, np.ndarray]:
        keys = _keys(paths[list_name])
        if not keys:
            raise DataError(f"clothing1m: {paths[list_name]} lists no images")
        labels = _labelled(keys, table, paths[list_name], paths[kv_name])
        _check_labels(labels, classes, f"clothing1m: {kv_name} (for {list_name})")
        return ImageFiles(str(folder), encode_paths(keys), size=256, resize=256), labels

    x_train, y_train = split("noisy_train_key_list.txt", "noisy_label_kv.txt", noisy_kv)
    x_test, y_test = split("clean_test_key_list.txt", "clean_label_kv.txt", clean_kv)
    validation = None
    if val:
        validation = EvalSet(
            "val", *split("clean_val_key_list.txt", "clean_label_kv.txt", clean_kv)
        )
    return Dataset(
        name="clothing1m",
        family="clothing1m",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=CLOTHING1M_CLASSES,
        mean=CLOTHING1M_MEAN,
        std=CLOTHING1M_STD,
        augment="clothing1m",
        clean_train=False,
        val=validation,
        epoch_samples=epoch_samples,
        crop=224,
    )


# ---------------------------------------------------------------------------------- WebVision

WEBVISION_LAYOUT = (
    "info/train_filelist_google.txt, info/val_filelist.txt, google/... and val_images_256/..."
)


def _file_list(path: Path, num_classes: int) -> tuple[list[str], np.ndarray]:
    """`<path> <label>` lines with label < num_classes, in file order (mini-WebVision is the
    first 50 classes: SSR `datasets/dataloader_webvision.py` keeps `target < num_class`)."""
    names, labels = [], []
    for number, name, label in _labelled_lines(path, "webvision"):
        if label < 0 or label >= 1000:
            raise DataError(f"webvision: {path} line {number} has label {label}, outside 0..999")
        if label < num_classes:
            names.append(name)
            labels.append(label)
    if not names:
        raise DataError(f"webvision: {path} has no image of the first {num_classes} classes")
    return names, np.array(labels, dtype=np.int64)


def _imagenet_val(folder: Path, num_classes: int) -> tuple[ImageFiles, np.ndarray]:
    """ILSVRC2012 validation images in one folder per class (WordNet ids): the folders sorted by
    name, the first `num_classes` kept, the sorted position as the label (SSR's
    `imagenet_dataset`), which is WebVision's class order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())[:num_classes]
    if len(classes) < num_classes:
        raise DataError(
            f"webvision: {folder} has {len(classes)} class folders; the ILSVRC2012 validation "
            f"set needs one per class (the first {num_classes} by name)"
        )
    names, labels = [], []
    for label, cls in enumerate(classes):
        images = sorted(p.name for p in (folder / cls).iterdir()
                        if p.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip
        if not images:
            raise DataError(f"webvision: ILSVRC2012 class folder {folder / cls} holds no images")
        names += [f"{cls}/{name}" for name in images]
        labels += [label] * len(images)
    return ImageFiles(str(folder), encode_paths(names), size=320, resize=320), np.array(labels)


def load_webvision(
    root: str | None,
    *,
    num_classes: Annotated[int, Field(ge=2, le=1000)] = 50,
    imagenet_val: str | None = "imagenet_val",
) -> Dataset:
    """WebVision 1.0's Google images (mini-WebVision: the first 50 classes), tested on its
    validation set and on the ILSVRC2012 validation images of the same classes.

    Train paths are relative to the root (`google/...`); validation names sit in
    `val_images_256/` (SSR's loader). `imagenet_val` is the ILSVRC2012 validation folder (one
    sub-folder per WordNet id), relative to the root or absolute; its accuracy is recorded every
    epoch as the further test set "imagenet"; null skips it. Images decode to Resize(320) and the
    central 320x320; the recipe crops 299 from that ("webvision" in `methods.toolkit.views`).
    """
    folder = _root("webvision", root, WEBVISION_LAYOUT)
    train_list = _need(folder / "info" / "train_filelist_google.txt", "webvision", WEBVISION_LAYOUT)
    val_list = _need(folder / "info" / "val_filelist.txt", "webvision", WEBVISION_LAYOUT)
    _need(folder / "val_images_256", "webvision", WEBVISION_LAYOUT)
    more = ()
    if imagenet_val is not None:
        imagenet = folder / Path(imagenet_val).expanduser()
        if not imagenet.is_dir():
            raise DataError(
                f"webvision: ILSVRC2012 validation folder {imagenet} does not exist; set "
                "dataset.options.imagenet_val to it, or to null to test on WebVision only"
            )
        more = (EvalSet("imagenet", *_imagenet_val(imagenet, num_classes)),)
    train_names, y_train = _file_list(train_list, num_classes)
    val_names, y_test = _file_list(val_list, num_classes)
    val_names = [f"val_images_256/{name}" for name in val_names]
    return Dataset(
        name="webvision" if num_classes == 1000 else f"webvision{num_classes}",
        family=f"webvision{num_classes}",
        x_train=ImageFiles(str(folder), encode_paths(train_names), size=320, resize=320),
        y_train=y_train,
        x_test=ImageFiles(str(folder), encode_paths(val_names), size=320, resize=320),
        y_test=y_test,
        classes=tuple(str(c) for c in range(num_classes)),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment="webvision",
        clean_train=False,
        more_tests=more,
        crop=299,
    )
