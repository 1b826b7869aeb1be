"""Integration fixtures: a real cluster of processes per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    c.start_master()
    try:
        yield c
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.logs())
