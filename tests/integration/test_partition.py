"""A network partition between the master and one agent, made for real: the agent runs in a
network namespace of its own (``ip netns`` and a veth pair, created and removed here) and
reaches the master only over that link, which the test takes down and up again.

Needs root and iproute2 (in CI both are there: nothing skips).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, running_cluster, wait_for_file
from tests.support.services import create, pid_alive, running, settled

pytestmark = pytest.mark.integration

LOST_AFTER = 10.0  # a cut shorter than this is a disconnection; a longer one, a loss


@dataclass
class Link:
    """A network namespace and the veth pair joining it to the host."""

    netns: str
    host_side: str
    host_ip: str

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def cut(self) -> None:
        """Take the link down: nothing passes either way, and nobody is told."""
        self._ip("link", "set", self.host_side, "down")

    def heal(self) -> None:
        self._ip("link", "set", self.host_side, "up")


@pytest.fixture
def link() -> Iterator[Link]:
    """A namespace ``corral-pN`` whose only way out is a veth to the host, removed after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        message = "the partition test needs root and iproute2 (apt-get install iproute2)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    n = os.getpid() % 250 + 1
    ns, host, inside = f"corral-p{os.getpid()}", f"vh{os.getpid()}", f"vn{os.getpid()}"
    host_ip, ns_ip = f"10.213.{n}.1", f"10.213.{n}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host)
        ip("link", "set", host, "up")
        ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", inside)
        ip("-n", ns, "link", "set", inside, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield Link(ns, host, host_ip)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", host)  # its peer goes with it
        ip("netns", "del", ns)


@pytest.fixture
def cut_cluster(link: Link, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A master listening on every address (the namespace reaches it over the veth)."""
    cluster = Cluster(tmp_path / "cluster", lost_after=LOST_AFTER, listen="0.0.0.0")
    with running_cluster(cluster, request) as c:
        yield c


def sleeper(pids: Path) -> dict[str, Any]:
    """A task that records its pid and then runs until killed (``exec``: same pid)."""
    return {"shell": f"echo $$ > {pids}/$CORRAL_TASK_ID; exec sleep 3600", "cpus": 0.1, "mem": 32}


def pid_of(pids: Path, task_id: str) -> int:
    return int(wait_for_file(pids / task_id, 10, "\n").strip())


def test_a_partitioned_agent_keeps_its_task_until_lost_then_it_is_replaced_and_killed_on_heal(
    cut_cluster: Cluster, link: Link, pids: Path
) -> None:
    cluster = cut_cluster
    cluster.add_agent("near1")
    far_url = f"http://{link.host_ip}:{cluster.port}"
    cluster.add_agent("far", netns=link.netns, master_url=far_url)
    with cluster.client() as api:
        doc = {
            "id": "/web",
            "instances": 2,
            "constraints": [["hostname", "UNIQUE"]],
            "task": sleeper(pids),
        }
        create(api, doc)
        first = cluster.wait_until(lambda: settled(api, "/web", 2), 30, "2 tasks RUNNING")
        assert {t.hostname for t in first} == {"near1", "far"}
        (on_far,) = [t for t in first if t.hostname == "far"]
        far_pid = pid_of(pids, on_far.id)
        cluster.add_agent("near2")

        # A short cut: the master disconnects the silent agent, which dials again once the
        # link is back and is reconciled: nothing is replaced, nothing restarted.
        link.cut()
        try:
            cluster.wait_until(
                lambda: cluster.agent_state("far") == "DISCONNECTED", LOST_AFTER, "far silent"
            )
        finally:
            link.heal()
        cluster.wait_until(lambda: cluster.agent_state("far") == "ACTIVE", 30, "far back")
        again = cluster.wait_until(lambda: settled(api, "/web", 2), 30, "2 tasks RUNNING")
        assert {t.id for t in again} == {t.id for t in first}
        assert pid_alive(far_pid)
        assert len(api.tasks(job="/web")) == 2

        # A long cut: the task keeps running on the cut-off agent until the master declares
        # it LOST, is replaced on the free host then, and is killed when the link is back.
        link.cut()
        try:
            cluster.wait_until(
                lambda: cluster.agent_state("far") == "LOST", LOST_AFTER + 10, "far LOST"
            )
            assert pid_alive(far_pid)
            replaced = cluster.wait_until(
                lambda: [t for t in running(api.service_tasks("/web")) if t.hostname == "near2"],
                30,
                "a replacement RUNNING on near2",
            )
            assert pid_alive(far_pid)  # nobody could tell it otherwise
        finally:
            link.heal()
        cluster.wait_until(lambda: not pid_alive(far_pid), 60, "the replaced task to be killed")
        cluster.wait_until(lambda: cluster.agent_state("far") == "ACTIVE", 30, "far back")
        final = cluster.wait_until(lambda: settled(api, "/web", 2), 30, "2 tasks RUNNING")
        # Once settled: two instances on two nodes, the far one being the LOST one replaced.
        assert {t.hostname for t in final} == {"near1", "near2"}
        assert {t.id for t in final} == {t.id for t in first if t.hostname == "near1"} | {
            replaced[0].id
        }
        assert api.task(on_far.id).state.value == "LOST"
        assert len(api.tasks(job="/web")) == 3
