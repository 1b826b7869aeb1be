"""The PyPI client ``chronos-python`` against a real cluster: add a scheduled and a dependent
job, list, search, run now, see the child run after its parent succeeded, read the graph and the
stats, kill, delete; a run-once job started a few seconds ago runs, an ``R1//`` job runs each
time it is added; a period under a second is refused naming the schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import chronos  # type: ignore[import-untyped]
import httplib2  # type: ignore[import-untyped]
import pytest

from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

# A start far ahead: the parent runs only when asked to, so the test decides when.
LATER = "R/2100-01-01T00:00:00Z/P1D"


class ClosingHttp(httplib2.Http):  # type: ignore[misc]
    """httplib2's client, closing its connections after each request: chronos-python makes a
    new one per call and leaves its socket to the garbage collector (a ResourceWarning)."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().request(*args, **kwargs)
        finally:
            self.close()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[[Cluster], Any]:
    """Makes chronos-python clients; they send the token as basic-auth password once
    challenged."""
    monkeypatch.setattr(httplib2, "Http", ClosingHttp)

    def make(cluster: Cluster) -> Any:
        url = cluster.url.removeprefix("http://")
        return chronos.connect(url, username="admin", password=cluster.token)

    return make


def runs(cluster: Cluster, name: str) -> int:
    with cluster.client() as c:
        return c.job(name).runs


def test_chronos_python_manages_scheduled_and_dependent_jobs(
    cluster: Cluster, tmp_path: Path, connect: Callable[[Cluster], Any]
) -> None:
    cluster.add_agent("a1", cpus=2, mem=2048)
    client = connect(cluster)
    out = tmp_path / "child.out"
    client.add(
        {
            "name": "parent",
            "command": "echo parent",
            "schedule": LATER,
            "owner": "ops@example.org",
            "disabled": False,
            "cpus": "0.5",
            "mem": "64",
        }
    )
    client.add(
        {
            "name": "child",
            "command": f"echo child ran > {out}",
            "parents": ["parent"],
            "owner": "ops@example.org",
            "disabled": False,
        }
    )
    jobs = {j["name"]: j for j in client.list()}
    assert jobs["parent"]["schedule"] == LATER and jobs["child"]["parents"] == ["parent"]
    assert [j["name"] for j in client.search(name="chi")] == ["child"]
    assert [j["name"] for j in client.search(command="echo parent")] == ["parent"]

    client.run("parent")
    assert cluster.wait_run("parent", 1) == "SUCCEEDED"
    cluster.wait_until(lambda: runs(cluster, "child") >= 1, 30, "the child to start")
    assert cluster.wait_run("child", 1) == "SUCCEEDED"
    assert out.read_text() == "child ran\n"

    listed = {j["name"]: j for j in client.list()}
    assert listed["parent"]["successCount"] == 1 and listed["parent"]["lastSuccess"]
    assert "link,parent,child" in client.scheduler_graph().splitlines()
    stat = client.job_stat("parent")
    assert stat["histogram"]["count"] == 1
    assert [t["status"] for t in stat["taskStatHistory"]] == ["Success"]

    with pytest.raises(chronos.ChronosAPIError):
        client.delete("parent")  # the child still depends on it
    client.delete("child")
    client.delete("parent")
    assert client.list() == []


def test_chronos_python_kills_the_running_tasks_of_a_job(
    cluster: Cluster, connect: Callable[[Cluster], Any]
) -> None:
    cluster.add_agent("a1", cpus=2, mem=2048)
    client = connect(cluster)
    client.add(
        {
            "name": "sleeper",
            "command": "sleep 300",
            "schedule": LATER,
            "owner": "",
            "disabled": False,
        }
    )
    client.run("sleeper")
    cluster.wait_task("sleeper.1.0.0", "RUNNING")
    client.delete_tasks("sleeper")
    assert cluster.wait_run("sleeper", 1) == "KILLED"
    client.delete("sleeper")
    assert client.list() == []


def test_chronos_python_runs_a_job_started_5_s_ago_and_an_r1_job_each_time_it_is_added(
    cluster: Cluster,
    tmp_path: Path,
    connect: Callable[[Cluster], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.add_agent("a1", cpus=2, mem=2048)
    client = connect(cluster)
    out = tmp_path / "sweep.out"
    start = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = {
        "name": "sweep",
        "command": f"echo ran >> {out}",
        "schedule": f"R1/{start}/PT10M",
        "owner": "physics@example.org",
        "disabled": False,
    }
    client.add(job)
    assert cluster.wait_run("sweep", 1) == "SUCCEEDED"
    [listed] = client.list()
    assert listed["schedule"] == f"R0/{start}/PT10M"
    now = {**job, "schedule": "R1//PT10M"}
    client.add(now)
    assert cluster.wait_run("sweep", 2) == "SUCCEEDED"
    client.add(now)  # the same again: Chronos re-reads the schedule, so it runs again
    assert cluster.wait_run("sweep", 3) == "SUCCEEDED"
    assert out.read_text() == "ran\nran\nran\n"
    # chronos-python logs the server's message and raises after trying every server.
    with pytest.raises(chronos.ChronosAPIError):
        client.add({**job, "name": "spin", "schedule": "R//PT0.0001S"})
    assert "schedule: period 'PT0.0001S' is shorter than the minimum of 1 second" in caplog.text
    assert [j["name"] for j in client.list()] == ["sweep"]
