"""Data and label files identified by their content, not their path.

A run id must survive moving a file (the same bytes are the same data) and must change when the
bytes change under the same name. `content_id` is a SHA-256 of the file, computed once per process
and file state (path, size, modification time), so a sweep hashes a large file once.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

CHUNK = 1 << 20


def content_id(path: str | Path) -> str | None:
    """`sha256:<hex>` of the file at `path`, or None when there is no such file (yet)."""
    file = Path(path).expanduser()
    try:
        stat = file.resolve().stat()
    except OSError:
        return None
    if not file.is_file():
        return None
    return _digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"
