"""`run_bench.py perf SUITE`: time real epochs of each method of a suite, split by phase.

For each method of the suite, on the suite's first dataset x noise x ratio x seed, the engine runs
`epochs` epochs and we report the median epoch after the first (which pays for cudnn autotuning and
compilation) split into train / selection / evaluation, training images per second, peak GPU memory,
and the engine switches in force. `--compare` runs the plain path (fp32, no channels_last, no cudnn
autotune, no compile) and the suite's fast path side by side in one call and prints their ratio, so
speed claims are ratios measured on the same machine in the same process.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nlbench.data.image_files import ImageFiles
from nlbench.devices import resolve_device
from nlbench.engine import EngineOptions
from nlbench.engine.images import Streamed, in_order
from nlbench.engine.loop import RunFailed
from nlbench.errors import ConfigError
from nlbench.expansion import expand
from nlbench.methods.api import get as get_method
from nlbench.methods.toolkit.views import make_view
from nlbench.run import DataCache, check_method, method_hparams, prepare_run
from nlbench.run_spec import RunSpec
from nlbench.store import write_atomic
from nlbench.suite import Suite

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
    phases: str
    """The phases of the timed epochs (a staged method's stage, DivideMix's warm-up), so a
    timing of warm-up epochs is never read as the method's steady state."""


def _first_per_method(specs: list[RunSpec]) -> list[RunSpec]:
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        seen.setdefault(spec.method.name, spec)
    return list(seen.values())


def time_method(
    spec: RunSpec,
    data: DataCache,
    device: torch.device,
    options: EngineOptions,
    epochs: int,
    path: str,
) -> PerfRow:
    """Run the first `epochs` epochs of one spec's real recipe (its schedules, stages and
    warm-up as a sweep trains them) and summarise the steady-state epoch."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    engine = prepare_run(spec, data, device, options)  # as a sweep starts the run
    try:
        fit = engine.fit(get_method(spec.method.name), method_hparams(spec),
                         describe=f"perf {path}", stop_after=epochs)  # fmt: skip
    except RunFailed as failed:
        raise ConfigError(f"perf: {spec.describe()} failed in epoch {failed.epoch}: "
                          f"{failed.reason}") from None  # fmt: skip
    steady = fit.epochs[1:] or fit.epochs
    med = {
        k: statistics.median(e.seconds[k] for e in steady) for k in ("train", "selection", "eval")
    }
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    on = [k for k, v in fit.switches.items() if v]
    return PerfRow(
        method=spec.method.name,
        path=path,
        epoch_s=round(sum(med.values()), 3),
        train_s=round(med["train"], 3),
        selection_s=round(med["selection"], 3),
        eval_s=round(med["eval"], 3),
        images_per_s=round(statistics.median(e.images_per_second for e in steady), 1),
        peak_mem_gb=None if peak is None else round(peak, 2),
        test_acc=fit.epochs[-1].test_acc,
        switches=",".join(on) or "none",
        phases=",".join(dict.fromkeys(p for e in steady for p in (e.pass_phases or [e.phase]))),
    )


def _concurrent_run(spec: RunSpec, options: EngineOptions, epochs: int, device: str) -> int:
    """One of N runs sharing the device (a spawned process, as a local worker is): the training
    images it processed in its first `epochs` epochs."""
    engine = prepare_run(spec, DataCache(), torch.device(device), options)
    fit = engine.fit(get_method(spec.method.name), method_hparams(spec), stop_after=epochs)
    return fit.images_seen


def output_stem(out_dir: Path, suite: str) -> str:
    """`perf_<suite>-<date>-<time>`, numbered if taken: a new measurement never overwrites an
    old one, so tables from two machines or two commits can be compared."""
    stem = f"perf_{suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = stem, 1
    while any(out_dir.glob(f"{candidate}.*")) or any(out_dir.glob(f"concurrency_{candidate}.*")):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def concurrency(
    suite: Suite,
    counts: list[int],
    epochs: int,
    device_name: str | None,
    out_dir: Path,
    stem: str,
) -> pd.DataFrame:
    """Total training throughput of 1, 2, 4... copies of the suite's first run sharing one device.

    This is what `runs_per_device` buys: small recipes leave a big GPU idle between kernel
    launches, and concurrent runs fill those gaps. Each count starts its processes together and
    divides all their training images by the wall time until the last one ends (start-up and
    data loading included, as a sweep pays them too). Each process starts its run as a sweep's
    worker does, on `engine.cpu_threads` threads.
    """
    device = resolve_device(device_name or suite.device)
    spec = expand(suite)[0]
    options = suite.engine.model_copy(update={"progress": False})
    context = multiprocessing.get_context("spawn")
    rows = []
    for count in counts:
        start = time.perf_counter()
        with context.Pool(count) as pool:
            seen = pool.starmap(_concurrent_run, [(spec, options, epochs, str(device))] * count)
        wall = time.perf_counter() - start
        rows.append(
            {
                "method": spec.method.name,
                "concurrent_runs": count,
                "wall_s": round(wall, 2),
                "total_images_per_s": round(sum(seen) / wall, 1),
                "per_run_images_per_s": round(sum(seen) / wall / count, 1),
            }
        )
        print(f"{count} concurrent run(s): {rows[-1]['total_images_per_s']} images/s in total")
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / f"concurrency_{stem}.csv", table.to_csv(index=False))
    return table


def run_perf(
    suite: Suite, epochs: int, compare: bool, device_name: str | None, out_dir: Path, stem: str
) -> pd.DataFrame:
    """Time every method of the suite; write `<stem>.md/.csv` under out_dir."""
    device = resolve_device(device_name or suite.device)
    data = DataCache()
    specs = _first_per_method(expand(suite))
    for spec in specs:  # a configuration error stops perf before the first timed epoch
        check_method(spec, data)
    paths = [("plain", suite.engine.model_copy(update=PLAIN))] if compare else []
    paths.append(("fast", suite.engine))
    rows = []
    for spec in specs:
        for name, options in paths:
            start = time.perf_counter()
            rows.append(time_method(spec, data, device, options, epochs, name))
            print(f"timed {spec.method.name} ({name}) in {time.perf_counter() - start:.1f} s")
    table = pd.DataFrame([r.__dict__ for r in rows])
    if compare:
        plain = table[table.path == "plain"].set_index("method")["epoch_s"]
        fast = table[table.path == "fast"].set_index("method")["epoch_s"]
        table["speedup_vs_plain"] = table["method"].map((plain / fast).round(2))
        table.loc[table.path == "plain", "speedup_vs_plain"] = 1.0
    summary = (
        "median epoch after the first (warm-up)"
        if epochs > 1
        else "one epoch, warm-up included (use --epochs 2+ for steady state)"
    )
    header = (
        f"perf of suite '{suite.name}' on {device.type}"
        f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"{epochs} epochs, {summary}\n\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    text = table.to_string(index=False)
    write_atomic(out_dir / f"{stem}.md", f"{header}```\n{text}\n```\n")
    write_atomic(out_dir / f"{stem}.csv", table.to_csv(index=False))
    return table


def stream_throughput(
    suite: Suite,
    workers: list[int],
    images: int,
    batch_size: int,
    device_name: str | None,
    out_dir: Path,
    stem: str,
) -> pd.DataFrame:
    """Images/s of the streamed path on the suite's first dataset: decoding alone, and decoding
    plus the weak and strong views on the device, with each number of decoding workers (and,
    on CUDA, decoding on the GPU with `torchvision.io.decode_jpeg(device="cuda")`).

    The first `images` training images are read in order, in batches of `batch_size`; the page
    cache is warmed by one untimed pass first, so the figures are decoding, not the disk.
    """
    device = resolve_device(device_name or suite.device)
    spec = expand(suite)[0]
    dataset = DataCache().dataset(spec)
    if not dataset.streamed:
        raise ConfigError(
            f"perf --stream-workers: dataset '{dataset.name}' is held in memory, not streamed; "
            "use a real-world dataset (or animal10n with stream: true)"
        )
    files = dataset.x_train.subset(np.arange(min(images, len(dataset.x_train))))
    chunks = in_order(len(files), batch_size)
    generator = torch.Generator().manual_seed(0)

    def augment(batch: torch.Tensor) -> None:
        for view in ("weak", "strong"):
            make_view(batch, view, dataset.augment, dataset.mean, dataset.std, generator)

    for _ in Streamed(files, device, max(workers)).batches(chunks):
        pass
    rows = []
    for count in workers:
        for label, work in (("decode", None), ("decode + weak + strong", augment)):
            start = time.perf_counter()
            for batch in Streamed(files, device, count).batches(chunks):
                if work is not None:
                    work(batch)
            _sync(device)
            rows.append(_stream_row(dataset.name, f"{count} CPU worker(s)", label, len(files),
                                    time.perf_counter() - start))  # fmt: skip
    if device.type == "cuda":
        start = time.perf_counter()
        for chunk in chunks:
            gpu_decode(files, chunk, device)
        _sync(device)
        rows.append(_stream_row(dataset.name, "GPU decode_jpeg", "decode", len(files),
                                time.perf_counter() - start))  # fmt: skip
    table = pd.DataFrame(rows)
    header = (
        f"streamed decode throughput of suite '{suite.name}' ({dataset.name}, {len(files)} "
        f"images at {files.size}x{files.size}, batch {batch_size}) on {device.type}, "
        f"{os.cpu_count()} CPU cores\n\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(
        out_dir / f"stream_{stem}.md", f"{header}```\n{table.to_string(index=False)}\n```\n"
    )
    write_atomic(out_dir / f"stream_{stem}.csv", table.to_csv(index=False))
    return table


def gpu_decode(files: ImageFiles, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch decoded on the GPU: bytes read on the host, `decode_jpeg(device=...)`, then
    `ImageFiles.fit` as the CPU path does."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    paths = [files.path(int(row)) for row in rows]
    decoded = decode_jpeg([read_file(str(p)) for p in paths], mode=ImageReadMode.RGB, device=device)
    return torch.stack([files.fit(image, path) for image, path in zip(decoded, paths)])


def _stream_row(dataset: str, decoder: str, work: str, count: int, seconds: float) -> dict:
    return {"dataset": dataset, "decoder": decoder, "work": work, "images": count,
            "seconds": round(seconds, 2), "images_per_s": round(count / seconds, 1)}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
