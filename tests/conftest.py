"""Shared test hooks and fixtures."""

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from corral.agent.cgroups import Cgroups
from corral.store.store import Store
from tests.support.cluster import Cluster, running_cluster
from tests.support.postgres import INSTALL, PostgresServer, remove_server, start_server

BACKENDS = ["sqlite", "postgresql"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can print logs on failure."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session", autouse=True)
def _default_task_cgroups_removed() -> Iterator[None]:
    """Executors made with the default cgroup name (``corral``) keep their ended tasks' cgroups
    for later tasks, and tests seldom close them as an agent does: the session removes them."""
    yield
    Cgroups.detect().release()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A real master (agents are added by each test)."""
    with running_cluster(Cluster(tmp_path), request) as c:
        yield c


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (see ``tests/support/postgres.py``)."""
    server = start_server()
    if server is None:
        message = f"PostgreSQL is not installed: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield server
    remove_server(server)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated to the newest schema, once: a copy of it is a new migrated
    store in a few milliseconds, where migrating one takes ~60 ms (hundreds of tests)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "state.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.close()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new store on each backend: a SQLite file, or a PostgreSQL database of its
    own, migrated to the newest schema and empty."""
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.take_database()
    yield server.url(name)
    server.give_back(name)
