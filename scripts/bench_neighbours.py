"""Time NeighbourIndex build + search per backend on random features, SSR's case by default.

SSR's kNN vote queries all N training features against themselves (N=50,000, d=512, k=200 on
CIFAR); the feature pass + kNN should cost under a fifth of a training epoch, so this
measures what each backend costs on the machine at hand. Reports the median of `--repeats` runs.

    python scripts/bench_neighbours.py [--n 50000 --d 512 --k 200 --repeats 2 --device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from nlbench.methods.toolkit import neighbours
from nlbench.methods.toolkit.neighbours import NeighbourIndex


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def bench(features: torch.Tensor, backend: str, k: int, repeats: int) -> tuple[float, float]:
    """Median build and search seconds of `backend` (query = the indexed set, self included)."""
    builds, searches = [], []
    for _ in range(repeats):
        device = features.device
        build_s, index = _timed(lambda: NeighbourIndex.build(features, backend=backend), device)
        search_s, _ = _timed(lambda index=index: index.search(k=k), device)
        builds.append(build_s)
        searches.append(search_s)
    return statistics.median(builds), statistics.median(searches)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="indexed rows, all of them queried")
    parser.add_argument("--d", type=int, default=512, help="feature dimension")
    parser.add_argument("--k", type=int, default=200, help="neighbours per query")
    parser.add_argument("--repeats", type=int, default=2, help="runs per backend; median shown")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    features = torch.randn(args.n, args.d, generator=torch.Generator().manual_seed(0)).to(device)
    backends = ["torch"] if neighbours._faiss() is None else ["faiss", "torch"]
    print(
        f"N={args.n} d={args.d} k={args.k} query=all N, device={device}, "
        f"torch threads={torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"{'backend':<8} {'build s':>9} {'search s':>9} {'total s':>9}")
    for backend in backends:
        build_s, search_s = bench(features, backend, args.k, args.repeats)
        gpu = backend == "faiss" and neighbours._faiss_gpu_usable(device)
        label = f"{backend}-gpu" if gpu else backend
        print(f"{label:<8} {build_s:>9.3f} {search_s:>9.3f} {build_s + search_s:>9.3f}")


if __name__ == "__main__":
    main()
