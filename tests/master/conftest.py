"""Fixtures of the master's tests: a simulated master on each store backend."""

from collections.abc import Iterator

import pytest

from tests.master.sim import Sim


@pytest.fixture
def sim(store_url: str) -> Iterator[Sim]:
    """A master on a new store (SQLite, then PostgreSQL) with no agent yet."""
    s = Sim(store_url)
    yield s
    s.close()
