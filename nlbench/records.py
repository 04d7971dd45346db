"""The run record: one typed, versioned schema, written by the runner and read by the report.

A record is everything a leaderboard cell needs and everything needed to tell two runs apart: the
resolved spec (every hyperparameter, not only the overrides), the noise as drawn (nominal ratio,
realised rate, transition counts), the code that ran (nlbench version, commit, and whether the
tree had uncommitted changes), the device and thread count, and one entry per epoch.

`SCHEMA_VERSION` changes whenever the same spec would give different numbers or the fields change
meaning. Records of an older version are refused with one line, never mixed with current ones.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import nlbench
from nlbench.run_spec import RunSpec
from nlbench.specs import EpochLog

SCHEMA_VERSION = 2
"""2: run streams from numpy's SeedSequence, autocast around forward and loss only, typed
records with code version and dirty flag (1: seed + i streams, untyped records)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Failure(_Strict):
    """Why a run stopped (a non-finite loss, an exception in the method) and in which epoch."""

    reason: str
    epoch: int


class NoiseInfo(_Strict):
    """The noisy labels as drawn: what was asked (`nominal_ratio`) and what came out."""

    model: str
    nominal_ratio: float | None
    realised_rate: float | None
    """None for a real-world dataset's own labels, whose clean counterparts are unknown."""
    transition_counts: list[list[int]]


class Environment(_Strict):
    """The code and machine a run ran on. `dirty` is None outside a git checkout."""

    nlbench_version: str
    nlbench_commit: str | None
    dirty: bool | None
    torch: str
    cuda: str | None
    device: str
    device_name: str
    python: str
    threads: int


class FinalMetrics(_Strict):
    """The last epoch, the mean of the last 10 epochs, the test-selected best (an upper bound,
    labelled so), and with a noisy validation split the epoch it selects: its test accuracy and
    its noisy-validation accuracy (the first epoch with the best one). Interim epochs (a staged
    method's earlier networks) are never selected."""

    last_acc: float
    best_acc: float
    best_epoch: int
    mean_last10: float
    mean_last10_networks: float | None = None
    """The mean over the last 10 epochs and over every network the method trains
    (`EpochLog.network_acc`; the scored one's `test_acc` for a method with one): JoCoR's rule,
    both networks over official epochs >= 190. None in records written before it existed."""
    val_selected_acc: float | None = None
    val_epoch: int | None = None
    best_val_acc: float | None = None

    @classmethod
    def of(cls, epochs: list[EpochLog]) -> FinalMetrics | None:
        if not epochs:
            return None
        accs = [e.test_acc for e in epochs]
        final = [i for i, e in enumerate(epochs) if not e.interim] or list(range(len(epochs)))
        best = max(final, key=accs.__getitem__)
        tail = [accs[i] for i in final][-10:]
        selected: dict[str, float | int] = {}
        scored = [i for i in final if epochs[i].noisy_val_acc is not None]
        if scored:
            pick = max(scored, key=lambda i: epochs[i].noisy_val_acc)
            selected = {"val_selected_acc": accs[pick], "val_epoch": epochs[pick].epoch,
                        "best_val_acc": epochs[pick].noisy_val_acc}  # fmt: skip
        nets = [
            list(e.network_acc.values()) or [e.test_acc] for e in map(epochs.__getitem__, final)
        ]
        every = [acc for accs_of in nets[-10:] for acc in accs_of]
        return cls(
            mean_last10_networks=round(sum(every) / len(every), 4),
            last_acc=accs[-1],
            best_acc=accs[best],
            best_epoch=epochs[best].epoch,
            mean_last10=round(sum(tail) / len(tail), 4),
            **selected,
        )


class Record(_Strict):
    """One run's record, stored as `results/<suite>/<run_id>.json`."""

    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str
    suite: str
    status: Literal["ok", "failed"]
    failure: Failure | None = None
    spec: RunSpec
    env: Environment
    noise: NoiseInfo
    epochs: list[EpochLog]
    final: FinalMetrics | None
    scored_network: str | None
    switches: dict[str, bool] = Field(default_factory=dict)
    resumed_from_epoch: int | None = None
    wall_seconds: float
    images_per_second: float | None
    estimates: dict[str, list[list[float]]] = Field(default_factory=dict)
    """What a method estimated about the noise, as of its last epoch (the `transition` matrix of
    forward correction or Confident Learning, rows = clean class), for the report's heat-maps."""
    data_id: str | None = None
    """A digest of the data the run read (`RunSpec.data_id`: `run_spec.dataset_identity`, i.e.
    the loader, its options and its data files by content or its image folder by listing, and
    the noise model's label files by content): reports never put runs on different bytes under
    one label in one cell."""
    engine_options: dict[str, Any] | None = None
    """Every engine option the run ran with but `progress` (its id holds only those that change
    its numbers): a failed run is retried once they change, as one of them may have caused it.
    None in records written before it existed."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class OutdatedRecord(ValueError):
    """A record of an older schema version: refused as a whole folder, never mixed in."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"schema version {version}, this nlbench writes {SCHEMA_VERSION}")
        self.version = version


class NewerRecord(ValueError):
    """A record of a newer schema version: this nlbench cannot read it, and must neither mix it
    in, move it aside nor train its run again."""

    def __init__(self, version: int) -> None:
        super().__init__(f"schema version {version}, this nlbench reads {SCHEMA_VERSION}")
        self.version = version


def parse_record(raw: Any) -> Record:
    """A record from parsed JSON; ValueError says what is wrong, OutdatedRecord if it is old,
    NewerRecord if a newer nlbench wrote it."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("schema_version", raw.get("schema"))
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and not isinstance(version, bool):
            if version < SCHEMA_VERSION:
                raise OutdatedRecord(version)
            raise NewerRecord(version)
        raise ValueError(f"schema version {version!r}, expected {SCHEMA_VERSION}")
    try:
        return Record.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"field '{where}': {first['msg']}") from None


@functools.cache
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(nlbench.__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(device: torch.device) -> Environment:
    """This process's code version and machine, as a record stores them."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return Environment(
        nlbench_version=nlbench.__version__,
        nlbench_commit=commit,
        dirty=None if status is None else bool(status),
        torch=torch.__version__,
        cuda=torch.version.cuda if device.type == "cuda" else None,
        device=device.type,
        device_name=name or platform.machine(),
        python=platform.python_version(),
        threads=torch.get_num_threads(),
    )
