"""Fixtures of the Chronos API tests: the in-process app of the API tests, and a real cluster."""

from pathlib import Path

import pytest

from corral.master.master import Master
from corral.master.records import AgentRecord
from corral.scheduler.model import Resources
from corral.spec.states import AgentState
from tests.api.conftest import anonymous, api, master, token

__all__ = ["anonymous", "api", "master", "token"]


@pytest.fixture
def volume_root(master: Master, tmp_path: Path) -> Path:
    """A directory an agent of the in-process master allows volumes under."""
    root = tmp_path / "shared"
    root.mkdir()
    master.state.agents["a1"] = AgentRecord(
        id="a1",
        hostname="a1",
        total=Resources(millicpus=4000, mem=8192, disk=10000),
        attributes={},
        drivers=frozenset({"process", "docker"}),
        state=AgentState.ACTIVE,
        last_seq=0,
        registered_at=0.0,
        volume_roots=(str(root),),
    )
    return root
