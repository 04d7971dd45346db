"""Neighbour index: exact neighbours on every backend, self handling, normalisation, chunking."""

import pytest
import torch

from nlbench.errors import ConfigError
from nlbench.methods.toolkit import neighbours
from nlbench.methods.toolkit.neighbours import NeighbourIndex, TorchIndex

N, D, K = 300, 16, 10
BACKENDS = ["torch", "faiss", "auto"]


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    return torch.randn(N, D, generator=torch.Generator().manual_seed(0))


def _reference(bank: torch.Tensor, queries: torch.Tensor, k: int):
    """float64 brute force, plus the smallest gap between the k-th and (k+1)-th similarity."""
    b = torch.nn.functional.normalize(bank.double(), dim=1)
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    top = torch.topk(q @ b.T, k + 1, dim=1)
    gap = (top.values[:, k - 1] - top.values[:, k]).min().item()
    return top.values[:, :k], top.indices[:, :k], gap


def _assert_same_neighbours(sims, idx, ref_sims, ref_idx):
    assert idx.dtype == torch.int64 and sims.dtype == torch.float32
    assert torch.equal(idx.sort(dim=1).values, ref_idx.sort(dim=1).values)
    torch.testing.assert_close(sims.double(), ref_sims, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_finds_the_exact_neighbours(features, backend):
    ref_sims, ref_idx, gap = _reference(features, features, K)
    assert gap > 1e-4  # the data has no near-ties, so the neighbour sets are unambiguous
    sims, idx = NeighbourIndex.build(features, backend=backend).search(k=K)
    _assert_same_neighbours(sims, idx, ref_sims, ref_idx)
    assert torch.all(sims[:, :-1] >= sims[:, 1:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_external_queries(features, backend):
    queries = torch.randn(40, D, generator=torch.Generator().manual_seed(1))
    ref_sims, ref_idx, gap = _reference(features, queries, K)
    assert gap > 1e-4
    sims, idx = NeighbourIndex.build(features, backend=backend).search(queries, k=K)
    _assert_same_neighbours(sims, idx, ref_sims, ref_idx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_included_by_default_and_excluded_on_request(features, backend):
    index = NeighbourIndex.build(features, backend=backend)
    rows = torch.arange(N)
    sims, idx = index.search(k=K)
    assert torch.equal(idx[:, 0], rows)
    torch.testing.assert_close(sims[:, 0], torch.ones(N))
    sims_ex, idx_ex = index.search(k=K, exclude_self=True)
    assert idx_ex.shape == (N, K)
    assert not (idx_ex == rows[:, None]).any()
    ref_sims, ref_idx, _ = _reference(features, features, K + 1)
    _assert_same_neighbours(sims_ex, idx_ex, ref_sims[:, 1:], ref_idx[:, 1:])


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_exclude_self_with_duplicates_still_returns_k_others(backend):
    bank = torch.ones(6, 4)  # all rows identical: self may be tied out of the top k+1
    sims, idx = NeighbourIndex.build(bank, backend=backend).search(k=3, exclude_self=True)
    assert idx.shape == (6, 3)
    assert not (idx == torch.arange(6)[:, None]).any()
    torch.testing.assert_close(sims, torch.ones(6, 3))


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_cosine_ignores_feature_scale(features, backend):
    scale = torch.rand(N, 1, generator=torch.Generator().manual_seed(2)) * 100 + 0.01
    _, idx = NeighbourIndex.build(features, backend=backend).search(k=K)
    sims_scaled, idx_scaled = NeighbourIndex.build(features * scale, backend=backend).search(k=K)
    assert torch.equal(idx.sort(dim=1).values, idx_scaled.sort(dim=1).values)
    assert sims_scaled.max() <= 1 + 1e-5


def test_chunking_gives_the_same_result(features):
    whole = TorchIndex(features)
    chunked = TorchIndex(features, chunk_bytes=7 * 4 * N)  # 7 query rows per chunk
    assert whole.chunk_rows >= N and chunked.chunk_rows == 7
    sims, idx = whole.search(k=K)
    sims_c, idx_c = chunked.search(k=K)
    assert torch.equal(idx, idx_c)
    torch.testing.assert_close(sims, sims_c)


def test_auto_uses_faiss_on_cpu_when_installed(features):
    assert NeighbourIndex.build(features).backend == "faiss"


def test_missing_faiss_is_a_config_error_with_the_fix(features, monkeypatch):
    monkeypatch.setattr(neighbours, "_faiss", lambda: None)
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        NeighbourIndex.build(features, backend="faiss")
    assert NeighbourIndex.build(features).backend == "torch"


def test_bad_arguments(features):
    with pytest.raises(ConfigError, match="did you mean 'torch'"):
        NeighbourIndex.build(features, backend="torc")
    with pytest.raises(ConfigError, match="metric"):
        NeighbourIndex.build(features, metric="l1")
    index = NeighbourIndex.build(features, backend="torch")
    with pytest.raises(ConfigError, match="lower the k"):
        index.search(k=N, exclude_self=True)
    with pytest.raises(ValueError, match="exclude_self"):
        index.search(features[:5], k=3, exclude_self=True)
