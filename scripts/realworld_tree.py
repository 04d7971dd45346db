"""Generated trees in the real-world datasets' native layouts, for tests and timing.

    python scripts/realworld_tree.py animal10n OUT [--per-class N]
    python scripts/realworld_tree.py clothing1m OUT
    python scripts/realworld_tree.py webvision OUT

Each image is a class colour plus noise; sizes vary where the real datasets' do (Clothing1M,
WebVision), so the resize path runs. The tests build small ones (tens of JPEGs per class); a
large ANIMAL-10N-shaped one (`--per-class 2000`: 20,000 images) serves the bounded-memory test
and `run_bench.py perf --stream-workers` on a machine without the real data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.io import write_jpeg


def write_image(path: Path, label: int, height: int, width: int, rng: np.random.Generator) -> None:
    """A JPEG of the class colour of `label` plus noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256])
    pixels = colour[:, None, None] + rng.integers(-20, 21, (3, height, width))
    image = torch.from_numpy(np.clip(pixels, 0, 255).astype(np.uint8))
    write_jpeg(image, str(path), quality=90)


def animal10n_tree(root: Path, per_class: int = 6, test_per_class: int = 2, seed: int = 0) -> Path:
    """`training/` and `testing/` of 64x64 `<label>_<id>.jpg`, ids of varying width."""
    rng = np.random.default_rng(seed)
    for part, count in (("training", per_class), ("testing", test_per_class)):
        for label in range(10):
            for i in range(count):
                name = f"{label}_{i:0{1 + i % 3}d}{label}.jpg"
                write_image(root / part / name, label, 64, 64, rng)
    return root


def clothing1m_tree(
    root: Path, counts: list[int] | None = None, scale: int = 1, seed: int = 0
) -> Path:
    """The list files and `images/<a>/<bb>/<name>.jpg`, 14 classes of unequal sizes; the noisy
    train set and the clean test and validation sets as SSR's loader reads them. Training images
    are (30..42 x 40) x `scale` pixels (`scale` 8: about Clothing1M's own sizes)."""
    rng = np.random.default_rng(seed)
    counts = counts or [6 + (c % 4) * 3 for c in range(14)]
    noisy, clean, train, test, val = [], [], [], [], []
    for label, count in enumerate(counts):
        for i in range(count):
            key = f"images/{label % 10}/{label:02d}/n{label}_{i}.jpg"
            write_image(root / key, label, (30 + (i % 3) * 6) * scale, 40 * scale, rng)
            noisy.append(f"{key} {label}")
            train.append(key)
        for i in range(2):
            key = f"images/{label % 10}/{label:02d}/c{label}_{i}.jpg"
            write_image(root / key, label, 36, 36, rng)
            clean.append(f"{key} {label}")
            (test if i == 0 else val).append(key)
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    (root / "noisy_train_key_list.txt").write_text("\n".join(train) + "\n")
    (root / "clean_test_key_list.txt").write_text("\n".join(test) + "\n")
    (root / "clean_val_key_list.txt").write_text("\n".join(val) + "\n")
    return root


def webvision_tree(
    root: Path, classes: int = 52, per_class: int = 8, imagenet_classes: int = 51, seed: int = 0
) -> Path:
    """`info/` lists over `classes` labels (mini keeps those < 50), `google/`, `val_images_256/`
    and `imagenet_val/<wnid>/` with more folders than mini needs (first 50 by name)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(classes):
        for i in range(per_class):
            name = f"google/q{label:04d}/{i}.jpg"
            write_image(root / name, label, 24 + (i % 2) * 8, 32, rng)
            train.append(f"{name} {label}")
        name = f"val{label:05d}.jpg"
        write_image(root / "val_images_256" / name, label, 32, 32, rng)
        val.append(f"{name} {label}")
    (root / "info").mkdir(parents=True, exist_ok=True)
    (root / "info" / "train_filelist_google.txt").write_text("\n".join(train) + "\n")
    (root / "info" / "val_filelist.txt").write_text("\n".join(val) + "\n")
    for label in range(imagenet_classes):
        for i in range(2):
            write_image(root / "imagenet_val" / f"n{label:08d}" / f"v{i}.JPEG", label, 32, 28, rng)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=["animal10n", "clothing1m", "webvision"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=6, help="training images per class")
    parser.add_argument("--scale", type=int, default=1, help="Clothing1M image size factor")
    args = parser.parse_args()
    if args.layout == "animal10n":
        animal10n_tree(args.out, per_class=args.per_class)
    elif args.layout == "clothing1m":
        clothing1m_tree(args.out, counts=[args.per_class] * 14, scale=args.scale)
    else:
        webvision_tree(args.out)
    print(f"wrote a {args.layout} tree under {args.out}")


if __name__ == "__main__":
    main()
