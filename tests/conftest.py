"""Shared fixtures. Tests make their own small data; ../shared is optional and skipped when absent."""

from __future__ import annotations

from pathlib import Path

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
        body = text + f"\nresults_dir: {tmp_path / 'results'}\nreports_dir: {tmp_path / 'reports'}\n"
        path.write_text(body)
        return path

    return write
