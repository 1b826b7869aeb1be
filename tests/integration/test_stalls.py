"""A master or an agent that stalls (SIGSTOP, a long GC pause, a frozen VM) comes back: the
session is closed on both ends, the agent registers again and is reconciled, kills reach it, and
an agent declared LOST that returns kills what was replaced."""

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from corral.client import Client
from corral.spec.jobs import JobSpec
from tests.support.cluster import Cluster, Proc, running_cluster, shell_wait_for, wait_for_file


def spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate(fields)


def pause(proc: Proc | None, seconds: float) -> None:
    """Freeze a process for ``seconds`` (the stall under test), then let it go on."""
    assert proc is not None and proc.popen is not None
    proc.popen.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the stall itself, not a wait for state
    finally:
        proc.popen.send_signal(signal.SIGCONT)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start_long(cluster: Cluster, c: Client, pid_file: Path) -> int:
    """Run ``long.1.0.0``, a task that records its pid and blocks until killed; answers the
    pid once it runs."""
    task = {"shell": f"echo $$ > {pid_file}; exec sleep 600", "cpus": 0.5}
    c.create_job(spec(name="long", task=task))
    cluster.wait_task("long.1.0.0", "RUNNING")
    return int(wait_for_file(pid_file, 30, "\n"))


@contextmanager
def frozen(cluster: Cluster, name: str, until: str) -> Iterator[None]:
    """Freeze agent ``name`` until the master sees it ``until`` (DISCONNECTED, LOST); the body
    runs while it is still frozen, then it goes on."""
    proc = cluster.agents[name]
    assert proc.popen is not None
    proc.popen.send_signal(signal.SIGSTOP)
    try:
        cluster.wait_until(lambda: cluster.agent_state(name) == until, 30, f"{name} {until}")
        yield
    finally:
        proc.popen.send_signal(signal.SIGCONT)


def connected_and_active(cluster: Cluster, name: str) -> bool:
    with cluster.client() as c:
        return any(
            a.hostname == name and a.connected and a.state.value == "ACTIVE" for a in c.agents()
        )


def test_a_master_stalled_for_5s_keeps_its_agents_and_kills_still_reach_them(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        pid = start_long(cluster, c, tmp_path / "pid")

        pause(cluster.master, 5)

        cluster.wait_until(lambda: connected_and_active(cluster, "a1"), 30, "a1 ACTIVE again")
        c.create_job(spec(name="after", task={"command": ["true"]}))
        assert cluster.wait_run("after") == "SUCCEEDED"
        c.kill_task("long.1.0.0")
        assert cluster.wait_task("long.1.0.0", "KILLED").hostname == "a1"
        assert not alive(pid)


def test_an_agent_stalled_for_5s_is_disconnected_then_registers_again_with_its_task(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        pid = start_long(cluster, c, tmp_path / "pid")
        with frozen(cluster, "a1", "DISCONNECTED"):
            pass  # frozen just long enough for the master to give up on it

        cluster.wait_until(lambda: connected_and_active(cluster, "a1"), 30, "a1 back")
        assert c.task("long.1.0.0").state.value == "RUNNING"  # reconciled, not lost
        registered = [
            e for e in cluster.events() if e.type == "agent_state" and e.reason == "registered"
        ]
        assert len(registered) >= 2  # it said hello again on a new connection
        c.kill_task("long.1.0.0")
        assert cluster.wait_task("long.1.0.0", "KILLED").reason.startswith("killed")
        assert not alive(pid)
        c.create_job(spec(name="after", task={"command": ["true"]}))
        assert cluster.wait_run("after") == "SUCCEEDED"


@pytest.fixture
def quick_loss(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster whose master declares an agent LOST after 2 s of silence."""
    with running_cluster(Cluster(tmp_path, lost_after=2.0), request) as cluster:
        yield cluster


def test_an_agent_stalled_until_lost_kills_what_was_replaced_when_it_returns(
    quick_loss: Cluster, tmp_path: Path
) -> None:
    cluster = quick_loss
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    pid_file = tmp_path / "pid"
    with cluster.client() as c:
        c.create_job(
            spec(
                name="mobile",
                retries=2,
                retry_backoff=0,
                task={
                    "shell": f"[ -e {pid_file} ] || echo $$ > {pid_file}; {shell_wait_for(gate)}",
                    "cpus": 0.5,
                },
            )
        )
        cluster.wait_task("mobile.1.0.0", "RUNNING")
        pid = int(wait_for_file(pid_file, 30, "\n"))
        cluster.add_agent("a2")
        with frozen(cluster, "a1", "LOST"):
            assert cluster.wait_task("mobile.1.0.1", "RUNNING").hostname == "a2"

        cluster.wait_until(lambda: connected_and_active(cluster, "a1"), 30, "a1 back")
        cluster.wait_until(lambda: not alive(pid), 30, "the replaced attempt to be killed")
        assert c.task("mobile.1.0.0").state.value == "LOST"
        gate.touch()
        assert cluster.wait_run("mobile") == "SUCCEEDED"
        assert len(c.tasks(job="mobile")) == 2  # the replacement ran; nothing else


def test_a_kill_sent_while_an_agent_is_stalled_takes_effect_when_it_returns(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        pid = start_long(cluster, c, tmp_path / "pid")
        with frozen(cluster, "a1", "DISCONNECTED"):
            killed = c.kill_task("long.1.0.0")  # the agent cannot hear it now
            assert killed.state.value == "KILLED" and "agent not connected" in killed.reason
        cluster.wait_until(lambda: connected_and_active(cluster, "a1"), 30, "a1 back")
        cluster.wait_until(lambda: not alive(pid), 30, "the killed task's process to end")
