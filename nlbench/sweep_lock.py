"""One sweep per results folder: an OS file lock, held for as long as the sweep runs.

Two sweeps of one suite on one folder would each train every pending run. The lock is an `flock`
on `<results>/.nlbench-lock`, which the kernel releases when its holder dies, so a sweep killed
with -9 never leaves a stale lock behind. The file's text names the holder (pid, host, start time)
for the line a second sweep prints. The file itself is never deleted: a process waiting on a lock
file that another removes and recreates would hold a lock nobody else sees.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nlbench.errors import ConfigError

LOCK_NAME = ".nlbench-lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (it may not have written it yet)."""
    try:
        held = json.loads(path.read_text())
        return f"pid {held['pid']} on {held['host']}, started {held['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def sweep_lock(folder: Path, wait: bool = False) -> Iterator[None]:
    """Hold `folder`'s lock for the body, or stop with one line naming who holds it (with
    `wait`, say so once and block until it is free)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise ConfigError(
                    f"results folder {folder} is in use by another sweep ({_holder(path)}); "
                    "nothing was trained: let it finish, or rerun with --wait to start when it "
                    "ends"
                ) from None
            print(f"waiting for the sweep in {folder} ({_holder(path)}) to end", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        held = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(held).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
