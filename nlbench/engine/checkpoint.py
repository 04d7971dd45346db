"""Checkpoints of a run: the method's state, the epochs so far and every random stream, so a
resumed run continues bit-identically; and about how large they will be, for the disk check."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlbench.errors import StorageError, write_failure
from nlbench.methods.api import Method
from nlbench.specs import EpochLog


@dataclass
class RunStreams:
    """The run's random streams a checkpoint holds (`loop.run_streams`) and its device."""

    sample: torch.Generator
    view: torch.Generator
    method: torch.Generator
    rng: np.random.Generator
    device: torch.device


CHECKPOINT_GROWTH = 3
"""A checkpoint's size as a multiple of a freshly built method's state: optimisers add their
moment buffers (up to two per weight, as Adam keeps) after the first step."""


def checkpoint_bytes(method: Method) -> int:
    """About how large the method's checkpoints will be, from its state before training."""

    def tensor_bytes(part: Any) -> int:
        if isinstance(part, torch.Tensor):
            return part.numel() * part.element_size()
        if isinstance(part, dict):
            return sum(map(tensor_bytes, part.values()))
        if isinstance(part, (list, tuple)):
            return sum(map(tensor_bytes, part))
        return 0

    return CHECKPOINT_GROWTH * tensor_bytes(method.state_dict())


def save_checkpoint(path: Path, method: Method, epoch: int, epochs: list[EpochLog],
                    streams: RunStreams) -> None:  # fmt: skip
    """The method's state, the epochs so far and every random stream of the run, written
    atomically (a full disk raises StorageError and leaves the previous checkpoint)."""
    state = {
        "epoch": epoch,
        "epochs": [e.model_dump() for e in epochs],
        "method": method.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": streams.rng.bit_generator.state,
            "sample": streams.sample.get_state(),
            "view": streams.view.get_state(),
            "method": streams.method.get_state(),
            "python": random.getstate(),
            "np_global": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state(streams.device)
            if streams.device.type == "cuda"
            else None,
        },
    }
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"could not write the checkpoint {path} ({write_failure(exc)})"
        ) from None


def load_checkpoint(path: Path, method: Method, streams: RunStreams) -> tuple[int, list[EpochLog]]:
    """Restore the method and every random stream; the first epoch to train and those done."""
    state = torch.load(path, map_location=streams.device, weights_only=False)
    method.load_state_dict(state["method"])
    rng = state["rng"]
    # map_location also moved the RNG states to the device; torch takes them only on the CPU.
    torch.set_rng_state(rng["torch"].cpu())
    streams.rng.bit_generator.state = rng["numpy"]
    streams.sample.set_state(rng["sample"].cpu())
    streams.view.set_state(rng["view"].cpu())
    streams.method.set_state(rng["method"].cpu())
    if rng.get("cuda") is not None and streams.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"].cpu(), streams.device)
    random.setstate(rng["python"])
    np.random.set_state(rng["np_global"])
    return state["epoch"] + 1, [EpochLog.model_validate(e) for e in state["epochs"]]
