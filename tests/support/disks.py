"""A small, real filesystem that tests can fill: a tmpfs mounted for the test (root only)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` at ``path`` for the duration (created if missing)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            raise RuntimeError("disk-full tests mount a tmpfs: CI must run them as root")
        pytest.skip("disk-full tests mount a tmpfs: run them as root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` up to its last byte; remove the returned file to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with suppress(OSError):  # ENOSPC: full
            while os.write(fd, b"\0" * 65536):
                pass
        with suppress(OSError):
            while os.write(fd, b"\0"):
                pass
    finally:
        os.close(fd)
    return filler
