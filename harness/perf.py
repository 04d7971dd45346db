"""`run_bench.py perf SUITE`: time real epochs of each method of a suite, split by phase.

For each method of the suite, on the suite's first dataset x noise x ratio x seed, the engine runs
`epochs` epochs and we report the median epoch after the first (which pays for cudnn autotuning and
compilation) split into train / selection / evaluation, training images per second, peak GPU memory,
and the engine switches in force. `--compare` runs the plain path (fp32, no channels_last, no cudnn
autotune, no compile) and the suite's fast path side by side in one call and prints their ratio, so
speed claims are ratios measured on the same machine in the same process.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from harness.config import EngineOptions, RunSpec, Suite, expand
from harness.engine import Engine, resolve_device
from harness.runner import DataCache
from harness.store import write_atomic
from methods.base import get as get_method

PLAIN = {"amp": False, "channels_last": False, "cudnn_benchmark": False, "compile": False}


@dataclass
class PerfRow:
    """One timed method under one set of engine switches."""

    method: str
    path: str
    epoch_s: float
    train_s: float
    selection_s: float
    eval_s: float
    images_per_s: float
    peak_mem_gb: float | None
    test_acc: float
    switches: str


def _first_per_method(specs: list[RunSpec]) -> list[RunSpec]:
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        seen.setdefault(spec.method["name"], spec)
    return list(seen.values())


def time_method(spec: RunSpec, data: DataCache, device: torch.device, options: EngineOptions,
                epochs: int, path: str) -> PerfRow:
    """Run `epochs` epochs of one spec and summarise the steady-state epoch."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    engine = Engine(data.dataset(spec), data.noisy(spec), spec.seed, device, options,
                    noise_rate_hint=spec.noise["ratio"], noise_model=spec.noise["model"])
    hparams = {**spec.method["hparams"], "epochs": epochs}
    fit = engine.fit(get_method(spec.method["name"]), hparams, describe=f"perf {path}")
    steady = fit.epochs[1:] or fit.epochs
    med = {k: statistics.median(e["seconds"][k] for e in steady)
           for k in ("train", "selection", "eval")}
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    on = [k for k, v in fit.switches.items() if v]
    return PerfRow(
        method=spec.method["name"], path=path, epoch_s=round(sum(med.values()), 3),
        train_s=round(med["train"], 3), selection_s=round(med["selection"], 3),
        eval_s=round(med["eval"], 3),
        images_per_s=round(statistics.median(e["images_per_second"] for e in steady), 1),
        peak_mem_gb=None if peak is None else round(peak, 2),
        test_acc=fit.epochs[-1]["test_acc"], switches=",".join(on) or "none",
    )


def run_perf(suite: Suite, epochs: int, compare: bool, device_name: str | None,
             out_dir: Path) -> pd.DataFrame:
    """Time every method of the suite; write `perf_<suite>.md/.csv` under out_dir."""
    device = resolve_device(device_name or suite.device)
    data = DataCache()
    specs = _first_per_method(expand(suite))
    paths = [("plain", suite.engine.model_copy(update=PLAIN))] if compare else []
    paths.append(("fast", suite.engine))
    rows = []
    for spec in specs:
        for name, options in paths:
            start = time.perf_counter()
            rows.append(time_method(spec, data, device, options, epochs, name))
            print(f"timed {spec.method['name']} ({name}) in {time.perf_counter() - start:.1f} s")
    table = pd.DataFrame([r.__dict__ for r in rows])
    if compare:
        plain = table[table.path == "plain"].set_index("method")["epoch_s"]
        fast = table[table.path == "fast"].set_index("method")["epoch_s"]
        table["speedup_vs_plain"] = table["method"].map((plain / fast).round(2))
        table.loc[table.path == "plain", "speedup_vs_plain"] = 1.0
    header = (f"perf of suite '{suite.name}' on {device.type}"
              f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
              f"{epochs} epochs, median epoch after the first\n\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    text = table.to_string(index=False)
    write_atomic(out_dir / f"perf_{suite.name}.md", f"{header}```\n{text}\n```\n")
    write_atomic(out_dir / f"perf_{suite.name}.csv", table.to_csv(index=False))
    return table
