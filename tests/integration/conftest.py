"""Integration tests use the real-cluster fixture ``cluster`` of ``tests/conftest.py``, and
``pids`` here."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import pid_alive


@pytest.fixture
def pids(tmp_path: Path) -> Iterator[Path]:
    """Where tasks write their pids; any process still alive at the end is killed."""
    d = tmp_path / "pids"
    d.mkdir()
    yield d
    for f in d.iterdir():
        try:
            pid = int(f.read_text().strip())
        except ValueError:
            continue
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
