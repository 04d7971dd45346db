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
from typing import Any

SCHEMA = 1


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


def read_record(path: Path) -> dict[str, Any]:
    """Parse and sanity-check one record; ValueError says what is wrong with it."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos}; truncated?)") from None
    except UnicodeDecodeError:
        raise ValueError("not a text file") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("schema") != SCHEMA:
        raise ValueError(f"schema {record.get('schema')!r}, expected {SCHEMA}")
    missing = [k for k in ("run_id", "spec", "status") if k not in record]
    if missing:
        raise ValueError(f"missing field '{missing[0]}'")
    if record["run_id"] != path.stem:
        raise ValueError(f"run_id {record['run_id']} does not match the file name")
    return record


class Store:
    """Records of one suite under `results/<suite>/<run_id>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.root / "checkpoints" / f"{run_id}.pt"

    def write(self, record: dict[str, Any]) -> Path:
        path = self.path(record["run_id"])
        write_atomic(path, json.dumps(record, indent=1, sort_keys=True))
        return path

    def load(self) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
        """All readable records, and (path, problem) for each unreadable one."""
        records, problems = [], []
        if not self.root.is_dir():
            return records, problems
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(read_record(path))
            except (ValueError, OSError) as exc:
                problems.append((path, str(exc)))
        return records, problems

    def quarantine(self, path: Path) -> Path:
        """Move an unreadable record aside so its run is redone and the bytes are kept."""
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, target)
        return target
