"""In-process API tests: a master on a temporary store (SQLite, then PostgreSQL), served
through TestClient.

No loops run and no agent connects, so submitted tasks stay PENDING: these tests are about what
the API accepts, refuses, stores and answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.master.master import Master
from corral.store.store import Store


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def master(store_url: str) -> Iterator[Master]:
    store = Store(store_url)
    store.migrate()
    m = Master(store, FixedClock())
    m.agents.load()
    m.state.load()
    yield m
    store.close()


@pytest.fixture
def token(master: Master, tmp_path: Path) -> str:
    return master.ensure_admin_token(tmp_path / "admin.token")


@pytest.fixture
def api(master: Master, token: str) -> Iterator[TestClient]:
    with TestClient(create_app(master), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture
def anonymous(master: Master, token: str) -> Iterator[TestClient]:
    with TestClient(create_app(master)) as client:
        yield client
