"""Long runs you can watch: a log line per epoch beside the record, and optionally TensorBoard
and Weights & Biases.

Every run appends one line per finished epoch to `results/<suite>/logs/<run_id>.log` (epoch, test
accuracy, losses, selection statistics, seconds), so `tail -f` follows a run in any executor, and
the sweep's progress line reads the newest line of each running run. TensorBoard event files
(`results/<suite>/tensorboard/<run_id>/`) and W&B runs (offline by default, under
`results/<suite>/wandb/`) are switched on per suite (`tracking:`) or with `--tensorboard` /
`--wandb`; both need the `tracking` extra (`pip install -e ".[tracking]"`).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from nlbench.errors import ConfigError, StorageError, write_failure
from nlbench.specs import EpochLog


class TrackingOptions(BaseModel):
    """A suite's `tracking:` section. None of it changes a run's numbers or its id."""

    model_config = ConfigDict(extra="forbid")

    tensorboard: bool = False
    wandb: bool = False
    wandb_mode: Literal["offline", "online"] = "offline"
    wandb_project: str | None = None
    wandb_entity: str | None = None

    def check_installed(self) -> None:
        """One line before any training when a switched-on logger's package is missing."""
        for wanted, package in ((self.tensorboard, "tensorboard"), (self.wandb, "wandb")):
            if wanted and importlib.util.find_spec(package) is None:
                raise ConfigError(
                    f"tracking.{package} is on but the '{package}' package is missing: "
                    "pip install -e '.[tracking]' (or switch it off)"
                )


def log_path(results: Path, run_id: str) -> Path:
    return results / "logs" / f"{run_id}.log"


def format_epoch(entry: EpochLog, epochs: int) -> str:
    """One human-readable line: `epoch 3/30 test_acc 91.23 loss 0.4123 ... seconds 1.2`."""
    parts = [f"epoch {entry.epoch + 1}/{epochs}", f"test_acc {entry.test_acc:.2f}"]
    parts += [f"{k} {v:.4f}" for k, v in entry.losses.items()]
    parts += [f"{k} {v:.4f}" for k, v in entry.diagnostics.items()]
    parts.append(f"seconds {sum(entry.seconds.values()):.2f}")
    return "  ".join(parts)


class RunTracker:
    """Receives each finished epoch of one run and writes it to every switched-on destination."""

    def __init__(self, results: Path, run_id: str, describe: str, suite: str,
                 config: dict[str, Any], options: TrackingOptions) -> None:  # fmt: skip
        self.path = log_path(results, run_id)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StorageError(
                f"could not open the log {self.path} ({write_failure(exc)})"
            ) from None
        self._write(f"# {describe} ({run_id}), started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.writer = None
        self.wandb_run = None
        if options.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(results / "tensorboard" / run_id))
        if options.wandb:
            import wandb

            self.wandb_run = wandb.init(
                project=options.wandb_project or suite, entity=options.wandb_entity,
                name=describe, id=run_id, resume="allow", config=config,
                mode=options.wandb_mode, dir=str(results), reinit="create_new",
            )  # fmt: skip

    def _write(self, line: str) -> None:
        """Append a line now; a log that cannot grow means the results disk is full or gone."""
        try:
            self.file.write(line)
            self.file.flush()
        except OSError as exc:
            raise StorageError(
                f"could not write the log {self.path} ({write_failure(exc)})"
            ) from None

    def __call__(self, entry: EpochLog, epochs: int) -> None:
        self._write(format_epoch(entry, epochs) + "\n")
        scalars = {"test_acc": entry.test_acc, "images_per_second": entry.images_per_second}
        scalars |= {f"loss/{k}": v for k, v in entry.losses.items()}
        scalars |= {f"diagnostics/{k}": v for k, v in entry.diagnostics.items()}
        scalars |= {f"seconds/{k}": v for k, v in entry.seconds.items()}
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, entry.epoch)
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=entry.epoch)

    def close(self, status: str) -> None:
        """End the log with how the run ended (`ok` only once its record is on disk). Best effort:
        the line matters less than the error that may be on its way up."""
        try:
            self.file.write(f"# {status}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            self.file.close()
        except OSError:
            pass
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=0 if status == "ok" else 1)


def last_epoch(path: Path) -> str | None:
    """`epoch 3/30` from the newest epoch line of a run's log, or None before its first epoch."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("epoch "):
            return line.split("  ", 1)[0].removeprefix("epoch ")
    return None
