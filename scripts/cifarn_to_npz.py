"""Convert a CIFAR-N label file (`CIFAR-10_human.pt`, `CIFAR-100_human.pt`) into the `.npz` the
`cifarn` noise model reads without unpickling.

    python scripts/cifarn_to_npz.py CIFAR-10_human.pt cifar10n_labels.npz

The official files are pickles of numpy arrays, which torch >= 2.6 refuses to load by default;
this loads one once (only do this with a file you trust: unpickling can run code), checks that
every array holds whole-number labels of one length, and writes them as a plain `.npz`.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the official .pt file")
    parser.add_argument("target", help="the .npz to write")
    args = parser.parse_args(argv)
    content = torch.load(args.source, map_location="cpu", weights_only=False)
    if not isinstance(content, dict):
        print(f"error: {args.source} does not hold a dict of label arrays", file=sys.stderr)
        return 2
    arrays = {str(key): np.asarray(value) for key, value in content.items()}
    lengths = {key: len(value) for key, value in arrays.items() if value.ndim == 1}
    bad = [k for k, v in arrays.items() if v.ndim != 1 or not np.all(np.mod(v, 1) == 0)]
    if bad or len(set(lengths.values())) != 1:
        print(f"error: {args.source}: arrays {bad or sorted(lengths)} are not 1-D whole-number "
              "labels of one length", file=sys.stderr)  # fmt: skip
        return 2
    np.savez(args.target, **{key: value.astype(np.int64) for key, value in arrays.items()})
    print(f"{args.target}: {', '.join(sorted(arrays))} ({next(iter(lengths.values()))} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
