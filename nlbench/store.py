"""One JSON record per finished run, written atomically; the store is the sweep's only shared state.

A run is done when its record exists, so any executor can be killed and restarted and resumes
without losing or repeating work. A record that cannot be read is never dropped silently: it is
moved aside (kept for inspection), reported by path, and its run is redone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from nlbench.errors import ConfigError
from nlbench.records import OutdatedRecord, Record, parse_record


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


def check_writable(folder: Path, what: str, option: str) -> None:
    """Create `folder` and write and delete a probe file in it, or stop with one line: a sweep must
    learn that it cannot save results before it trains, not after."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{what} folder {folder} is not writable ({reason}); nothing was trained: choose "
            f"another with --set {option}=PATH"
        ) from None


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

    def write(self, record: Record) -> Path:
        path = self.path(record.run_id)
        write_atomic(path, json.dumps(record.model_dump(mode="json"), indent=1, sort_keys=True))
        return path

    def load(self) -> tuple[list[Record], list[tuple[Path, str]]]:
        """All readable records, and (path, problem) for each unreadable one.

        Records of an older schema version stop everything with one ConfigError before anything
        is read further or moved: they were made by other code and must not be mixed in.
        """
        records: list[Record] = []
        problems: list[tuple[Path, str]] = []
        outdated: list[tuple[Path, OutdatedRecord]] = []
        if not self.root.is_dir():
            return records, problems
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(read_record(path))
            except OutdatedRecord as exc:
                outdated.append((path, exc))
            except (ValueError, OSError) as exc:
                problems.append((path, str(exc)))
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
