"""Shared test hooks and fixtures."""

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, running_cluster


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can print logs on failure."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A real master (agents are added by each test)."""
    with running_cluster(Cluster(tmp_path), request) as c:
        yield c
