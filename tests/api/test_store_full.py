"""A store on a full disk answers 503 naming the cause, in each API's format, and keeps nothing
of the request: the store lives on a small tmpfs that a file then fills to the last byte."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.master.master import Master
from corral.store.store import Store
from tests.api.conftest import FixedClock


def fill(directory: Path) -> None:
    """Write to ``directory`` until its file system has no byte left."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    probe = directory / "probe"
    with pytest.raises(OSError) as err:  # the disk is truly full
        probe.write_bytes(b"x" * 4096)
    assert err.value.errno == errno.ENOSPC


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own (root only; CI runs as root)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)])
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def full(tmpfs: Path) -> Iterator[tuple[Master, TestClient]]:
    """A master whose store is on a tmpfs with no space left, and a client of its API."""
    store = Store.in_dir(tmpfs / "data")
    store.migrate()
    master = Master(store, FixedClock())
    master.agents.load()
    master.state.load()
    token = master.ensure_admin_token(tmpfs / "admin.token")
    fill(tmpfs)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(master), headers=headers) as client:
        yield master, client
    store.close()


JOB = {"name": "full", "array": "0-999", "task": {"shell": "true", "env": {"A": "x" * 4000}}}
APP = {"id": "/full", "cmd": "true", "instances": 1000, "env": {"A": "x" * 4000}}
CHRONOS = {"name": "full", "command": "true", "schedule": "R/2100-01-01T00:00:00Z/PT1H"}


def test_a_job_submitted_to_a_full_store_is_a_503_naming_the_cause(
    full: tuple[Master, TestClient],
) -> None:
    master, api = full
    r = api.post("/api/v1/jobs", json=JOB)
    assert r.status_code == 503, r.text
    assert "full" in r.json()["detail"]
    assert master.store.jobs() == [] and master.state.tasks == {}


def test_a_marathon_app_posted_to_a_full_store_is_a_503_in_marathons_format(
    full: tuple[Master, TestClient],
) -> None:
    _, api = full
    r = api.post("/v2/apps", json=APP)
    assert r.status_code == 503, r.text
    assert "full" in r.json()["message"]
    assert api.get("/v2/apps").json() == {"apps": []}


def test_a_chronos_job_posted_to_a_full_store_is_a_503_in_chronos_format(
    full: tuple[Master, TestClient],
) -> None:
    master, api = full
    r = api.post("/scheduler/iso8601", json=CHRONOS)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == HTTPStatus(503).phrase and "full" in body["message"]
    assert master.store.jobs() == []
