"""Which suite a results folder belongs to: `<results>/.nlbench-suite` names the suite file that
wrote it (its path and a digest of its content).

Two different suites with the same `name:` share `results/<name>/`, and their runs would merge
into one leaderboard. A sweep from a suite file at another path *and* with other content is
refused with one line. The same file edited in place (same path) or the same file moved or
copied (same content) is the same suite, and the note follows it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nlbench.errors import ConfigError, StorageError, write_failure
from nlbench.store import write_atomic

ORIGIN_NAME = ".nlbench-suite"


@dataclass(frozen=True)
class SuiteOrigin:
    """Where a suite came from: a file's resolved path, or a description of a suite made from
    other input (a method's command line), and a digest of its content."""

    path: str
    digest: str

    @classmethod
    def of_file(cls, path: Path) -> SuiteOrigin:
        return cls(str(Path(path).resolve()), hashlib.sha256(Path(path).read_bytes()).hexdigest())

    @classmethod
    def of_data(cls, where: str, raw: Any) -> SuiteOrigin:
        text = json.dumps(raw, sort_keys=True, default=str)
        return cls(where, hashlib.sha256(text.encode()).hexdigest())


def claim(folder: Path, origin: SuiteOrigin, name: str) -> None:
    """Refuse `origin` when `folder` belongs to another suite named `name`; else note it there."""
    note = folder / ORIGIN_NAME
    try:
        known = json.loads(note.read_text())
        path, digest = str(known["path"]), str(known["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        path = digest = None  # a folder from before the note, or an unreadable note: adopt it
    if path is not None and path != origin.path and digest != origin.digest:
        raise ConfigError(
            f"results folder {folder} holds suite '{name}' from {path} (content "
            f"{digest[:8]}), and {origin.path} (content {origin.digest[:8]}) is another suite "
            "of the same name: give one of them another `name:`, or choose another folder with "
            "--set results_dir=PATH"
        )
    if (path, digest) != (origin.path, origin.digest):
        try:
            write_atomic(note, json.dumps(asdict(origin), indent=1, sort_keys=True))
        except OSError as exc:
            raise StorageError(f"could not write {note} ({write_failure(exc)})") from None
