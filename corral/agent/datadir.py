"""One agent per data directory: its journal, sandboxes and agent id are not shareable.

Two agents on one directory would present one agent id twice, replay each other's journal and
kill each other's tasks as unknown; so the first holds a lock for as long as it runs and the
second refuses to start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "agent.lock"


class DataDirInUse(Exception):
    """Another running agent holds the data directory."""


def claim(data_dir: Path) -> int:
    """Lock ``data_dir`` for this process; the lock lasts until the returned descriptor is
    closed or the process ends. Raises ``DataDirInUse`` naming the holder's pid."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"another agent (pid {holder}) already uses the data directory {data_dir}; "
            "give each agent a --data of its own"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
