"""Shared fixtures. Tests make their own small data; ../shared is optional and skipped when absent."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests train tiny networks: one thread is as fast when the machine is idle and avoids the 10-100x
# slowdowns of oversubscribed OpenMP threads when other processes share the cores.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it holds optional real-data checks)")
    return SHARED


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a suite YAML into tmp_path; results/reports go under tmp_path too."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        body = (
            text + f"\nresults_dir: {tmp_path / 'results'}\nreports_dir: {tmp_path / 'reports'}\n"
        )
        path.write_text(body)
        return path

    return write


def _pickle(path: Path, content: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(content, handle)


@pytest.fixture
def fake_cifar(tmp_path: Path) -> Path:
    """A folder in the real pickle layout of both CIFARs (cifar-10-batches-py/, cifar-100-python/)
    with a few random 32x32 images: enough to run the paper suites for one epoch."""
    root = tmp_path / "cifar"
    rng = np.random.default_rng(0)

    def batch(count: int, classes: int, key: str) -> dict:
        labels = (np.arange(count) % classes).tolist()
        body = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), key: labels}
        if key == "fine_labels":
            body["coarse_labels"] = [c // 5 for c in labels]
        return body

    c10 = root / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for i in range(1, 6):
        _pickle(c10 / f"data_batch_{i}", batch(10, 10, "labels"))
    _pickle(c10 / "test_batch", batch(20, 10, "labels"))
    _pickle(c10 / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    c100 = root / "cifar-100-python"
    c100.mkdir()
    _pickle(c100 / "train", batch(50, 100, "fine_labels"))
    _pickle(c100 / "test", batch(20, 100, "fine_labels"))
    _pickle(c100 / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    return root
