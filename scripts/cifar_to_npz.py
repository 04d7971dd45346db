"""Write a CIFAR-10/100 folder (the python pickle layout) as the `.npz` the `npz` dataset reads.

    python scripts/cifar_to_npz.py --dataset cifar10 --root ~/data/cifar --out cifar10.npz
    python scripts/cifar_to_npz.py --dataset cifar10 --root ~/data/cifar --out device_data/cifar10_subset.npz --train 10000 --test 2000

`--train N` keeps a class-stratified, seeded subset of N training images (and `--test M` of the
test set); `train_index` records each kept image's index in the full training set, so CIFAR-N
label files and the CIFAR noise maps still apply (`family: cifar10`). This is how the input of
`benchmarks/fastpath_accuracy.yaml` is built.
"""

from __future__ import annotations

import argparse

import numpy as np

from nlbench.data.datasets import load_dataset


def stratified(labels: np.ndarray, count: int | None, rng: np.random.Generator) -> np.ndarray:
    """`count` indices, the same share of every class, sorted; all indices when count is None."""
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    classes = np.unique(labels)
    per_class = count // len(classes)
    kept = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(kept))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["cifar10", "cifar100"], required=True)
    parser.add_argument("--root", required=True, help="folder holding cifar-10-batches-py/ etc.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, help="training images to keep (default: all)")
    parser.add_argument("--test", type=int, help="test images to keep (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset, args.root)
    rng = np.random.default_rng(args.seed)
    train = stratified(data.y_train, args.train, rng)
    test = stratified(data.y_test, args.test, rng)
    np.savez_compressed(
        args.out, x_train=data.x_train[train], y_train=data.y_train[train],
        x_test=data.x_test[test], y_test=data.y_test[test], train_index=train,
        classes=np.array(data.classes),
    )  # fmt: skip
    print(f"{args.out}: {len(train)} train, {len(test)} test images of {args.dataset}")


if __name__ == "__main__":
    main()
