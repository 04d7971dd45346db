"""Data and label files identified by their content, data folders by their listing; not by path.

A run id must survive moving a file (the same bytes are the same data) and must change when the
bytes change under the same name. `content_id` is a SHA-256 of the file, computed once per process
and file state (path, size, modification time), so a sweep hashes a large file once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
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


MANIFEST_DIR = ".nlbench"
"""The folder a dataset's manifest is cached in, inside the dataset's root (left out of it)."""


def folder_manifest(root: str | Path) -> str | None:
    """`manifest:<hex>`: a SHA-256 of every file under `root` as (relative path, size), sorted;
    None when `root` is not a folder.

    A folder dataset (a million Clothing1M JPEGs) is too large to hash by content on every
    sweep, and its root path must not identify it (moving it keeps its runs). Its listing does:
    another copy with other images has other names or sizes. The digest is kept, with every
    folder's modification time, in this process and in `root/.nlbench/manifest.json`, and
    recomputed when one of those times changed (a file added, removed or renamed anywhere
    below); a file rewritten in place at another size, the listing untouched, is not seen until
    then. A read-only root keeps no file and is walked once per process.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        return None
    folder = folder.resolve()
    cache = folder / MANIFEST_DIR / "manifest.json"
    for known in (_SEEN.get(folder), _read(cache)):
        if known is not None and _mtimes(folder, known["folders"]) == known["folders"]:
            _SEEN[folder] = known
            return known["digest"]
    with contextlib.suppress(OSError):
        (folder / MANIFEST_DIR).mkdir(exist_ok=True)  # before the walk: it changes root's mtime
    _SEEN[folder] = known = _walk(folder)
    with contextlib.suppress(OSError):
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, cache)
    return known["digest"]


_SEEN: dict[Path, dict] = {}


def _read(cache: Path) -> dict | None:
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(known, dict) and isinstance(known.get("folders"), dict) and "digest" in known
    return known if ok else None


def _mtimes(folder: Path, names: dict[str, int]) -> dict[str, int] | None:
    try:
        return {name: (folder / name).stat().st_mtime_ns for name in names}
    except OSError:
        return None


def _walk(folder: Path) -> dict:
    sha = hashlib.sha256()
    folders: dict[str, int] = {}
    for here, dirs, files in os.walk(folder):
        rel = os.path.relpath(here, folder)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != MANIFEST_DIR]
        dirs.sort()
        folders[rel] = os.stat(here).st_mtime_ns
        for name in sorted(files):
            with contextlib.suppress(OSError):
                size = os.stat(os.path.join(here, name)).st_size
                sha.update(f"{os.path.join(rel, name)}\0{size}\n".encode())
    return {"digest": f"manifest:{sha.hexdigest()}", "folders": folders}
