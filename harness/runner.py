"""A sweep: prepare data and noise for every pending run, run them, store one record each.

Data and noise are prepared for all pending runs *before* any training, so a missing folder or a
noise model without a class map fails in seconds, not after hours of other runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from data.dataset import Dataset
from data.datasets import load_dataset
from data.noise import NoisyLabels, apply_noise
from harness.config import EngineOptions, RunSpec, Suite
from harness.engine import Engine, FitResult, RunFailed, resolve_device
from harness.store import SCHEMA, Store
from methods.base import get as get_method


@dataclass
class SweepSummary:
    """What a sweep did: counts, and the records it could not read (already moved aside)."""

    total: int
    skipped: int = 0
    ran: int = 0
    failed: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str, Path]] = field(default_factory=list)


@functools.cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parents[1], timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"nlbench_commit": _git_commit(), "torch": torch.__version__,
            "cuda": torch.version.cuda if device.type == "cuda" else None,
            "device": device.type, "device_name": name or platform.machine(),
            "python": platform.python_version()}


class DataCache:
    """Loads each dataset once and draws each (dataset, noise) once per sweep."""

    def __init__(self) -> None:
        self._datasets: dict[str, Dataset] = {}
        self._noise: dict[str, NoisyLabels] = {}

    def dataset(self, spec: RunSpec) -> Dataset:
        key = json.dumps(spec.dataset, sort_keys=True)
        if key not in self._datasets:
            entry = spec.dataset
            self._datasets[key] = load_dataset(entry["name"], entry.get("root"), **entry["options"])
        return self._datasets[key]

    def noisy(self, spec: RunSpec) -> NoisyLabels:
        key = json.dumps([spec.dataset, spec.noise], sort_keys=True)
        if key not in self._noise:
            nz = spec.noise
            self._noise[key] = apply_noise(nz["model"], self.dataset(spec), nz["ratio"],
                                           nz["seed"], **nz["options"])
        return self._noise[key]


def final_metrics(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """Last-epoch accuracy is the headline; best epoch is test-selected and labelled so."""
    if not epochs:
        return {}
    accs = [e["test_acc"] for e in epochs]
    best = max(range(len(accs)), key=accs.__getitem__)
    tail = accs[-10:]
    return {"last_acc": accs[-1], "best_acc": accs[best], "best_epoch": epochs[best]["epoch"],
            "mean_last10": round(sum(tail) / len(tail), 4)}


def make_record(spec: RunSpec, noisy: NoisyLabels, device: torch.device, wall: float,
                fit: FitResult | None = None, failure: RunFailed | None = None) -> dict[str, Any]:
    epochs = fit.epochs if fit else (failure.epochs if failure else [])
    hparams = json.dumps(spec.method["hparams"], sort_keys=True)
    return {
        "schema": SCHEMA,
        "run_id": spec.run_id,
        "suite": spec.suite,
        "status": "failed" if failure else "ok",
        "failure": {"reason": failure.reason, "epoch": failure.epoch} if failure else None,
        "spec": spec.model_dump(),
        "recipe": hashlib.sha256(hparams.encode()).hexdigest()[:8],
        "env": environment(device),
        "noise": {"model": noisy.model, "nominal_ratio": noisy.nominal_ratio,
                  "realised_rate": round(float(noisy.realised_rate), 6),
                  "transition_counts": noisy.transition_counts.tolist()},
        "epochs": epochs,
        "final": final_metrics(epochs),
        "scored_network": fit.scored_network if fit else None,
        "switches": fit.switches if fit else {},
        "resumed_from_epoch": fit.resumed_from if fit else None,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(fit.images_seen / max(fit.train_seconds, 1e-9), 1) if fit else None,
    }


def run_one(spec: RunSpec, data: DataCache, store: Store, device: torch.device,
            options: EngineOptions, position: int = 0) -> dict[str, Any]:
    """Train one run and write its record (ok or failed); returns the record."""
    dataset, noisy = data.dataset(spec), data.noisy(spec)
    engine = Engine(dataset, noisy, spec.seed, device, options,
                    noise_rate_hint=spec.noise["ratio"], noise_model=spec.noise["model"])
    checkpoint = store.checkpoint_path(spec.run_id) if options.checkpoint_every else None
    start = time.perf_counter()
    try:
        fit = engine.fit(get_method(spec.method["name"]), spec.method["hparams"],
                         describe=spec.describe(), checkpoint=checkpoint, position=position)
        record = make_record(spec, noisy, device, time.perf_counter() - start, fit=fit)
    except RunFailed as failure:
        record = make_record(spec, noisy, device, time.perf_counter() - start, failure=failure)
    store.write(record)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return record


def pending_runs(specs: list[RunSpec], store: Store, retry_failed: bool,
                 summary: SweepSummary) -> tuple[list[RunSpec], list[tuple[Path, str]]]:
    """Runs without a readable record (or failed ones, with --retry-failed), and unreadable records."""
    records, problems = store.load()
    status = {r["run_id"]: r["status"] for r in records}
    todo = []
    for spec in specs:
        state = status.get(spec.run_id)
        if state == "ok" or (state == "failed" and not retry_failed):
            summary.skipped += 1
        else:
            todo.append(spec)
    return todo, problems


def run_sweep(suite: Suite, specs: list[RunSpec], store: Store, retry_failed: bool = False,
              device_name: str | None = None) -> SweepSummary:
    """Run what is not stored yet. Nothing on disk changes before data and noise are ready."""
    summary = SweepSummary(total=len(specs))
    todo, problems = pending_runs(specs, store, retry_failed, summary)
    device = resolve_device(device_name or suite.device)
    data = DataCache()
    for spec in todo:
        data.noisy(spec)
    for path, problem in problems:
        summary.problems.append((path, problem, store.quarantine(path)))
    bar = tqdm(total=len(todo), desc=f"sweep {suite.name}", position=0,
               disable=not suite.engine.progress or not todo, dynamic_ncols=True)
    for spec in todo:
        record = run_one(spec, data, store, device, suite.engine, position=1)
        summary.ran += 1
        if record["status"] == "failed":
            summary.failed.append(f"{spec.describe()}: {record['failure']['reason']}")
        bar.update(1)
    bar.close()
    return summary
