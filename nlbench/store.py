"""One JSON record per finished run, written atomically; the store is the sweep's only shared state.

A run is done when its record exists, so any executor can be killed and restarted and resumes
without losing or repeating work. A record that cannot be read is never dropped silently: it is
moved aside (kept for inspection), reported by path, and its run is redone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from nlbench.errors import ConfigError, write_failure
from nlbench.records import NewerRecord, OutdatedRecord, Record, parse_record


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, fsync, then rename: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); records are shared results, readable by the group
        # on a cluster's shared disk like any file the user writes.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


RECORD_BYTES_GUESS = 256 * 1024
"""Room assumed for a record before the folder holds one to measure (a 300-epoch record with
per-epoch diagnostics is about 150 KB)."""
ROOM_MARGIN = 1.5
"""Free space a run needs, as a multiple of its record and checkpoints: the next record may be
longer than the last, and other processes write to the same disk."""


def writable_problem(folder: Path) -> str | None:
    """Create `folder` and write and delete a probe file in it: None if that works, else why."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return write_failure(exc)
    return None


def check_writable(folder: Path, what: str, option: str) -> None:
    """Probe `folder` or stop with one line: a sweep must learn that it cannot save results before
    it trains, not after."""
    reason = writable_problem(folder)
    if reason is not None:
        raise ConfigError(
            f"{what} folder {folder} is not writable ({reason}); nothing was trained: choose "
            f"another with --set {option}=PATH"
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.0f} KB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MB"
    return f"{n / 1024**3:.1f} GB"


def read_record(path: Path) -> Record:
    """Parse and check one record file; ValueError says what is wrong with it."""
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos}; truncated?)") from None
    except UnicodeDecodeError:
        raise ValueError("not a text file") from None
    record = parse_record(raw)
    if record.run_id != path.stem:
        raise ValueError(f"run_id {record.run_id} does not match the file name")
    return record


class Store:
    """Records of one suite under `results/<suite>/<run_id>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.root / "checkpoints" / f"{run_id}.pt"

    def record_bytes(self) -> int:
        """The newest record's size (the next run's is likely alike), or a guess before the first."""
        newest, when = None, -1
        for path in self.root.glob("*.json"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if stat.st_mtime_ns > when:
                newest, when = stat.st_size, stat.st_mtime_ns
        return RECORD_BYTES_GUESS if newest is None else newest

    def storage_problem(self, checkpoint_bytes: int = 0) -> str | None:
        """Why the next run could not store its results, or None: the folder must take a file,
        and have room for a record like the last one and, when the run checkpoints, two of its
        checkpoints (the new one is written beside the old before replacing it)."""
        reason = writable_problem(self.root)
        if reason is not None:
            return f"results folder {self.root} is not writable ({reason})"
        record = self.record_bytes()
        need = int(ROOM_MARGIN * (record + 2 * checkpoint_bytes))
        free = shutil.disk_usage(self.root).free
        if free >= need:
            return None
        parts = f"a record of {_size(record)}" + (
            f" and checkpoints of {_size(checkpoint_bytes)}" if checkpoint_bytes else ""
        )
        return (
            f"results folder {self.root} has {_size(free)} free, and a run needs about "
            f"{_size(need)} ({parts}, with a margin)"
        )

    def write(self, record: Record) -> Path:
        path = self.path(record.run_id)
        write_atomic(path, json.dumps(record.model_dump(mode="json"), indent=1, sort_keys=True))
        return path

    def load(self) -> tuple[list[Record], list[tuple[Path, str]]]:
        """All readable records, and (path, problem) for each unreadable one.

        Records of an older schema version stop everything with one ConfigError before anything
        is read further or moved: they were made by other code and must not be mixed in. So do
        records of a newer one, which this code cannot read: they are not damaged, and moving
        them aside would retrain their runs.
        """
        records: list[Record] = []
        problems: list[tuple[Path, str]] = []
        outdated: list[tuple[Path, OutdatedRecord]] = []
        newer: list[tuple[Path, NewerRecord]] = []
        if not self.root.is_dir():
            return records, problems
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(read_record(path))
            except OutdatedRecord as exc:
                outdated.append((path, exc))
            except NewerRecord as exc:
                newer.append((path, exc))
            except (ValueError, OSError) as exc:
                problems.append((path, str(exc)))
        if newer:
            path, exc = newer[0]
            raise ConfigError(
                f"{self.root}: {len(newer)} record(s) (e.g. {path.name}, {exc}) were written by a "
                "newer nlbench; nothing was moved or trained: upgrade nlbench to use this folder, "
                "or choose another with --set results_dir=PATH"
            )
        if outdated:
            version = outdated[0][1].version
            raise ConfigError(
                f"{self.root}: {len(outdated)} record(s) of {outdated[0][1]} (an older nlbench, "
                f"whose runs are seeded differently) cannot be mixed in: move the folder aside "
                f"(mv {self.root} {self.root}.v{version}) and rerun"
            )
        return records, problems

    def quarantine(self, path: Path) -> Path:
        """Move an unreadable record aside so its run is redone and the bytes are kept."""
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, target)
        return target
