"""A second master on the same store follows the first: it hands every call to the leader
(Marathon's, Chronos' and the native API's, bodies and event streams included) and names it;
an agent dialling it is sent to the leader; clients given several URLs skip one that does not
answer. Once the leader stops cleanly, the follower leads at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.client import Client
from corral.spec.jobs import JobSpec
from tests.support.cluster import CORRAL, Cluster, Proc, free_port, leads


@pytest.fixture
def follower(cluster: Cluster) -> Iterator[str]:
    """A second master on the cluster's store; answers its URL once it follows."""
    port = free_port()
    proc = Proc(
        [
            *CORRAL,
            "master",
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(cluster.root / "master"),
        ],
        cluster.root / "master-2.log",
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    following = {"status": "ok", "leading": False, "leader": cluster.url}
    cluster.wait_until(lambda: health(url) == following, 30, "the second master to follow")
    try:
        yield url
    finally:
        proc.signal(signal.SIGTERM)


def health(url: str) -> object:
    try:
        return httpx.get(f"{url}/health", timeout=1).json()
    except httpx.TransportError:
        return None


def test_a_follower_hands_calls_of_every_api_to_the_leader_and_names_it(
    cluster: Cluster, follower: str
) -> None:
    auth = {"Authorization": f"Bearer {cluster.token}"}
    app = {"id": "/web", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": 0}
    created = httpx.post(f"{follower}/v2/apps", json=app, headers=auth, timeout=10)
    assert created.status_code == 201, created.text
    assert created.headers["x-corral-leader"] == cluster.url
    chronos = {"name": "nightly", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D"}
    added = httpx.post(f"{follower}/scheduler/iso8601", json=chronos, headers=auth, timeout=10)
    assert added.status_code == 204, added.text
    bad = httpx.post(f"{follower}/v2/apps", json={"id": "/x", "cpus": -1}, headers=auth)
    assert bad.status_code == 422 and "message" in bad.json()  # Marathon's own error format

    leader = httpx.get(f"{follower}/v2/leader", headers=auth, timeout=10)
    assert leader.json() == {"leader": cluster.url.removeprefix("http://")}
    page = httpx.get(f"{follower}/ui/jobs", headers=auth, timeout=10)
    assert f"leader <span data-leader>{cluster.url}</span>" in page.text  # the dashboard's
    with Client(follower, cluster.token) as api:
        info = api.info()
        assert (info.leader, info.leader_url) == (True, cluster.url)  # the leader answered
        api.create_job(JobSpec.model_validate({"name": "native", "task": {"command": ["true"]}}))
        first = next(iter(api.events(since=0)))  # an event stream, through the follower
        assert first.id == 1
    with cluster.client() as api:
        assert {"/web"} <= {s.id for s in api.services()}
        assert {"nightly", "native"} <= {j.name for j in api.jobs()}


def test_an_agent_and_a_client_given_several_masters_find_the_leader(
    cluster: Cluster, follower: str, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    # The agent dials a master that is down, then the follower, which names the leader.
    url, cluster_url = cluster.url, f"{nobody},{follower}"
    cluster.port_ranges.setdefault("a1", "31000-31199")
    proc = cluster._agent_proc("a1", 1, 512, (), {})
    proc.args[proc.args.index(url)] = cluster_url
    cluster.agents["a1"] = proc
    cluster.start_agent("a1")
    with Client(f"{nobody},{follower}", cluster.token) as api:
        assert [a.hostname for a in api.agents()] == ["a1"]
        api.create_job(JobSpec.model_validate({"name": "j", "task": {"command": ["true"]}}))
    assert cluster.wait_run("j") == "SUCCEEDED"


def test_once_the_leader_stops_cleanly_the_follower_leads_at_once(
    cluster: Cluster, follower: str
) -> None:
    assert cluster.master is not None
    stopped = time.monotonic()
    cluster.master.signal(signal.SIGTERM)  # a clean stop ends its lease
    deadline = stopped + 10
    while not leads(follower):
        assert time.monotonic() < deadline, "the follower did not take the lead"
        time.sleep(0.02)
    assert time.monotonic() - stopped < 5  # not a lease's wait (10 s on SQLite)
