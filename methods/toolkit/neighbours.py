"""Exact k-nearest-neighbour search behind one interface, so no method builds its own similarities.

SSR's case, as its official code runs it (MrChenFeng/SSR_BMVC2022 `main_cifar.py` l.135 and
l.146, `utils/funcs.py` l.35-85): the bank is every training sample (Clothing1M: the epoch's
pool), eval mode, weak view, and the queries are the same samples, each one's own row INCLUDED;
the queries are the features L2-normalised once, the bank the same features normalised again
(funcs.py l.67); k is `--k`, 200 in all four of its scripts; each of the k neighbours is one vote
(its weights set to 1, l.43). A sample's similarity to its own row is 1 up to float rounding, so
its own label is one of its k votes unless rows as similar (exact or near duplicates) crowd it
out. `ssr` keeps that arithmetic: `NeighbourIndex.build(unit).search(unit, k=k,
normalise_queries=False)` on the once-normalised features `unit`; `search(k=k)` with no queries
would query with the bank's twice-normalised rows instead.
Three backends give the same answer, exact search all:

* `faiss`: `IndexFlatIP` on a GPU when faiss has GPU support and the features live on one,
  otherwise on the CPU, where its BLAS + heap top-k is the fast path;
* `torch`: chunked matmul + `topk` on the features' device; the fast path on a GPU without
  faiss-gpu (whose wheel is large and tied to the CUDA 12 runtime), and the fallback everywhere;
* `auto`: faiss-gpu, else torch, for CUDA features; faiss, else torch, on the CPU.

Backends can disagree only among exactly tied similarities (duplicate or equidistant features):
which of the tied rows fills the last places of a top-k is an implementation detail of each
library. Everything else, index sets and similarities to float32 rounding, is the same.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nlbench.errors import ConfigError, did_you_mean

BACKENDS = ("auto", "faiss", "torch")
METRICS = ("cosine",)
CHUNK_BYTES = 256 * 2**20


@functools.cache
def _faiss() -> ModuleType | None:
    """faiss, imported on first use only: the GPU machines run without it."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _faiss_gpu_usable(device: torch.device) -> bool:
    faiss = _faiss()
    return (
        device.type == "cuda"
        and faiss is not None
        and hasattr(faiss, "StandardGpuResources")
        and faiss.get_num_gpus() > 0
    )


class NeighbourIndex(ABC):
    """An exact cosine-similarity index over the rows of a (N, d) feature matrix.

    Results come back as torch tensors on the features' device: similarities (float32, each row
    descending) and indices (int64) into the indexed rows.
    """

    backend: str

    def __init__(self, features: Tensor) -> None:
        if features.ndim != 2 or features.shape[0] == 0:
            shape = tuple(features.shape)
            raise ValueError(f"features must be a non-empty (N, d) matrix, got {shape}")
        self.size, self.dim = features.shape
        self.device = features.device

    @staticmethod
    def build(features: Tensor, metric: str = "cosine", backend: str = "auto") -> NeighbourIndex:
        """Index `features` (any float dtype; L2-normalised here) with the named backend."""
        if metric not in METRICS:
            hint, known = did_you_mean(metric, METRICS), ", ".join(METRICS)
            raise ConfigError(f"unknown metric '{metric}'{hint}; known: {known}")
        if backend not in BACKENDS:
            hint, known = did_you_mean(backend, BACKENDS), ", ".join(BACKENDS)
            raise ConfigError(f"unknown neighbour backend '{backend}'{hint}; known: {known}")
        if backend == "auto":
            if features.device.type == "cuda":
                backend = "faiss" if _faiss_gpu_usable(features.device) else "torch"
            else:
                backend = "faiss" if _faiss() is not None else "torch"
        if backend == "faiss":
            return FaissIndex(features)
        return TorchIndex(features)

    def search(
        self,
        queries: Tensor | None = None,
        *,
        k: int,
        exclude_self: bool = False,
        normalise_queries: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """The k most similar indexed rows for each query: (similarities, indices), each (Q, k).

        `queries=None` queries the indexed set itself, self included (similarity 1, so first but
        for exact duplicates, which tie it). With `exclude_self` (only for `queries=None`) row i's
        own index is dropped from its list; if exact duplicates crowd it out of the top k+1, the
        (k+1)-th neighbour is dropped instead.
        `normalise_queries=False` takes queries the caller has normalised as they are: a unit
        vector normalised again can differ in its last bits, enough to reorder near-tied
        neighbours, and a method may need the official code's exact arithmetic (SSR does).
        """
        if exclude_self and queries is not None:
            raise ValueError("exclude_self needs queries=None: only the indexed set has own rows")
        limit = self.size - int(exclude_self)
        if not 1 <= k <= limit:
            raise ConfigError(
                f"k={k} neighbours asked of {self.size} samples (at most {limit}): lower the k"
            )
        if queries is not None:
            if queries.ndim != 2 or queries.shape[1] != self.dim:
                raise ValueError(f"queries must be (Q, {self.dim}), got {tuple(queries.shape)}")
            queries = _normalise(queries) if normalise_queries else queries.detach().float()
        sims, idx = self._search(queries, k + int(exclude_self))
        if exclude_self:
            sims, idx = _drop_self(sims, idx)
        return sims, idx

    @abstractmethod
    def _search(self, queries: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        """Top-k of already-normalised queries (None: the indexed rows), on `self.device`."""


def _normalise(x: Tensor) -> Tensor:
    return F.normalize(x.detach().float(), dim=1)


def _drop_self(sims: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Remove, per row, the entry pointing at the row itself, or the last one if it is absent."""
    rows = torch.arange(idx.shape[0], device=idx.device)
    is_self = idx == rows[:, None]
    is_self[~is_self.any(dim=1), -1] = True
    keep = ~is_self
    shape = (idx.shape[0], idx.shape[1] - 1)
    return sims[keep].view(shape), idx[keep].view(shape)


@contextlib.contextmanager
def _exact_matmul() -> Iterator[None]:
    """Full-fp32 matmul for the search even if the run enabled TF32 for training speed.

    TF32 rounds to ~1e-3, which would reorder close neighbours and break the promise that every
    backend returns the same sets.
    """
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class TorchIndex(NeighbourIndex):
    """Exact search as chunked `queries @ bank.T` + `topk` on the features' device.

    Queries are processed in chunks sized so one chunk's similarity matrix stays under
    `chunk_bytes` (256 MiB by default), so memory does not grow as N^2.
    """

    backend = "torch"

    def __init__(self, features: Tensor, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(features)
        self.bank = _normalise(features)
        self.chunk_rows = max(1, chunk_bytes // (4 * self.size))

    @torch.no_grad()
    def _search(self, queries: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        queries = self.bank if queries is None else queries.to(self.device)
        sims, idx = [], []
        with _exact_matmul():
            for chunk in queries.split(self.chunk_rows):
                top = torch.topk(chunk @ self.bank.T, k, dim=1)
                sims.append(top.values)
                idx.append(top.indices)
        return torch.cat(sims), torch.cat(idx)


class FaissIndex(NeighbourIndex):
    """faiss `IndexFlatIP` over L2-normalised float32 rows (inner product = cosine).

    On a GPU index when faiss has GPU support and the features are on CUDA; on the CPU otherwise
    (CUDA features are then copied to the host and the results copied back).
    """

    backend = "faiss"

    def __init__(self, features: Tensor) -> None:
        super().__init__(features)
        faiss = _faiss()
        if faiss is None:
            raise ConfigError(
                "neighbour backend 'faiss' needs faiss: pip install faiss-cpu, "
                "or set backend: torch"
            )
        self._bank = _to_numpy(_normalise(features))
        index = faiss.IndexFlatIP(self.dim)
        if _faiss_gpu_usable(self.device):
            self._gpu_resources = faiss.StandardGpuResources()
            gpu = self.device.index
            if gpu is None:
                gpu = torch.cuda.current_device()
            index = faiss.index_cpu_to_gpu(self._gpu_resources, gpu, index)
        index.add(self._bank)
        self._index = index

    def _search(self, queries: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        q = self._bank if queries is None else _to_numpy(queries)
        sims, idx = self._index.search(q, k)
        return (
            torch.from_numpy(sims).to(self.device),
            torch.from_numpy(idx).to(self.device),
        )


def _to_numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)
