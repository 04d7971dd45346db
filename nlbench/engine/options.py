"""The engine's switches (a suite's `engine:` section), apart from the loop that reads them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineOptions(BaseModel):
    """Engine switches (a suite's `engine:` section); each optimisation can be turned off to
    measure its effect."""

    model_config = ConfigDict(extra="forbid")

    amp: bool = True
    channels_last: bool = True
    cudnn_benchmark: bool = True
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    neighbour_backend: Literal["auto", "faiss", "torch"] = "auto"
    eval_batch_size: int = Field(1024, ge=1)
    checkpoint_every: int = Field(0, ge=0)
    """Save a checkpoint every N epochs (0: never)."""
    progress: bool = True
    cpu_threads: int = Field(1, ge=1)
    """torch's CPU threads for each run, whatever executor runs it: the thread count changes the
    order of floating-point sums on the CPU, so it is part of the run (and of its id when not 1)."""
    data_workers: int = Field(2, ge=0)
    """Processes decoding a streamed dataset's images (0: the run's own process). Decoding is
    deterministic, so this changes speed, never numbers, and is not part of a run's id."""
