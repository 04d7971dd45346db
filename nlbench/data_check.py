"""`run_bench.py check-data SUITE`: decode every image a suite's streamed datasets list, once.

A sweep stats each listed file before its first epoch (`data.dataset.check_listed_files`): a
missing or empty file stops it in seconds. A file that exists but does not decode (a truncated or
corrupt JPEG) is found only by decoding it, which for Clothing1M's million images takes as long
as an epoch's decoding; this command does it on request, in the same decoding workers as
training, and lists every bad file rather than stopping at the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from nlbench.data.datasets import load_dataset
from nlbench.data.image_files import ImageFiles
from nlbench.errors import DataError
from nlbench.expansion import expand
from nlbench.run_spec import dataset_identity, dataset_label
from nlbench.suite import Suite


@dataclass
class SplitCheck:
    """One split's result: how many images it lists and the files that did not decode."""

    dataset: str
    split: str
    images: int
    streamed: bool
    bad: list[str] = field(default_factory=list)


class _DecodeEach(TorchDataset):
    """A batch of rows decoded in a worker; each file that fails gives its one-line message."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: np.ndarray) -> list[str]:
        problems = []
        for row in rows.tolist():
            try:
                self.files.decode(row)
            except DataError as err:
                problems.append(str(err))
        return problems


def _decode_all(files: ImageFiles, workers: int, batch: int, label: str) -> Iterator[str]:
    rows = np.arange(len(files))
    loader = DataLoader(
        _DecodeEach(files),
        batch_size=None,
        sampler=[rows[i : i + batch] for i in range(0, len(rows), batch)],
        num_workers=workers,
    )
    with tqdm(total=len(files), desc=label, unit="img", dynamic_ncols=True) as bar:
        for problems in loader:
            yield from problems
            bar.update(min(batch, bar.total - bar.n))


def check_data(suite: Suite, workers: int, batch: int = 64) -> list[SplitCheck]:
    """Every distinct dataset of the suite loaded as a run loads it (a bad list file or root
    raises `DataError`), then each streamed split decoded in full."""
    seen: set[str] = set()
    checks: list[SplitCheck] = []
    for spec in expand(suite):
        key = json.dumps(dataset_identity(spec.dataset), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        entry = spec.dataset
        dataset = load_dataset(entry.name, entry.root, **entry.options)
        name = dataset_label(entry)
        for split, images in dataset.image_sets():
            check = SplitCheck(name, split, len(images), isinstance(images, ImageFiles))
            if isinstance(images, ImageFiles):
                check.bad = list(_decode_all(images, workers, batch, f"{name} {split}"))
            checks.append(check)
    return checks


def summary_lines(checks: list[SplitCheck], shown: int = 20) -> list[str]:
    """One line a split, then the first `shown` bad files."""
    lines = []
    for c in checks:
        how = (
            f"{c.images:,} decoded, {len(c.bad):,} bad"
            if c.streamed
            else "in memory, read when loaded"
        )
        lines.append(f"{c.dataset} {c.split}: {how}")
    bad = [problem for c in checks for problem in c.bad]
    lines += [f"  {problem}" for problem in bad[:shown]]
    if len(bad) > shown:
        lines.append(f"  ... and {len(bad) - shown:,} more")
    return lines
