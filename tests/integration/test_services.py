"""Services on real processes: failover when an agent dies, restart backoff, scaling and
rolling restarts through the API, host ports.

Each long-running task writes its pid to a file named after its task id (in a directory of the
test), so a test can check that a process it expects gone really is.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.spec.views import TaskView
from tests.support.cluster import Cluster, running_cluster, wait_for_file
from tests.support.services import create, pid_alive, running, settled

pytestmark = pytest.mark.integration

LOST_AFTER = 2.0  # seconds of silence before the master declares an agent LOST (default 8)


def sleeper(pids: Path) -> dict[str, Any]:
    """A task that records its pid and then runs until killed (``exec``: same pid)."""
    return {"shell": f"echo $$ > {pids}/$CORRAL_TASK_ID; exec sleep 3600", "cpus": 0.1, "mem": 32}


def pid_of(pids: Path, task_id: str) -> int:
    """The pid a task wrote (waiting for the file: the task may only just have started)."""
    return int(wait_for_file(pids / task_id, 10, "\n").strip())


@pytest.fixture
def quick_loss(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A real master that declares a silent agent LOST after ``LOST_AFTER`` seconds."""
    with running_cluster(Cluster(tmp_path / "cluster", lost_after=LOST_AFTER), request) as c:
        yield c


def test_a_task_of_a_killed_agent_is_replaced_on_the_free_host_and_stopped_when_it_returns(
    quick_loss: Cluster, pids: Path
) -> None:
    cluster = quick_loss
    cluster.add_agents(["a1", "a2", "a3", "a4"])
    with cluster.client() as api, cluster.client() as c:
        dep = create(
            api,
            {
                "id": "/web",
                "instances": 3,
                "constraints": [["hostname", "UNIQUE"]],
                "task": sleeper(pids),
            },
        )
        first = cluster.wait_until(lambda: settled(api, "/web", 3), 30, "3 tasks RUNNING")
        assert api.deployment(dep.id).state == "SUCCEEDED"
        hosts = {t.hostname for t in first}
        assert len(hosts) == 3
        (free,) = set(cluster.agents) - hosts
        doomed = first[0]
        victim = doomed.hostname or ""
        doomed_pid = pid_of(pids, doomed.id)
        first_ids = {t.id for t in first}

        cluster.agents[victim].signal(signal.SIGKILL)

        def replaced() -> TaskView | None:
            new = [t for t in running(api.service_tasks("/web")) if t.id not in first_ids]
            return new[0] if new else None

        # Silence is noticed after LOST_AFTER; placing and starting takes well under 5 s.
        replacement = cluster.wait_until(
            replaced, LOST_AFTER + 5, "a replacement RUNNING within the loss timeout"
        )
        assert replacement.hostname == free
        lost = c.task(doomed.id)
        assert lost.state.value == "LOST" and "silent" in lost.reason
        assert cluster.agent_state(victim) == "LOST"
        # Only the agent died: its task still runs on the silent host.
        assert pid_alive(doomed_pid)

        # The agent comes back (same data dir, same id) still running the replaced task.
        cluster.start_agent(victim)
        cluster.wait_until(
            lambda: not pid_alive(doomed_pid), 30, "the replaced task's process to end"
        )
        final = cluster.wait_until(lambda: settled(api, "/web", 3), 30, "3 tasks RUNNING")
        assert {t.id for t in final} == first_ids - {doomed.id} | {replacement.id}
        assert len({t.hostname for t in final}) == 3
        assert victim not in {t.hostname for t in final}
        for t in final:
            assert pid_alive(pid_of(pids, t.id))
        # Nothing else was started, and the lost task's end stays as recorded.
        assert len(c.tasks(job="/web")) == 4
        assert c.task(doomed.id).state.value == "LOST"
        view = api.service("/web")
        assert (view.counts.running, view.counts.staged) == (3, 0)


def test_a_task_that_crashes_at_start_is_restarted_with_growing_delays(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    backoff = {"seconds": 0.5, "factor": 2, "max_launch_delay": 60}
    delays = [0.5, 1.0, 2.0]  # after the first, second and third failure in a row
    with cluster.client() as api:
        create(
            api,
            {
                "id": "/crash",
                "instances": 1,
                "backoff": backoff,
                "task": {"shell": "exit 1", "cpus": 0.1, "mem": 32},
            },
        )

        def starts() -> list[tuple[str, float]] | None:
            """(task, time) of each start, once there were enough of them."""
            found = [
                (e.task_id or "", e.time.timestamp())
                for e in cluster.events()
                if e.type == "task_state" and e.job == "/crash" and e.state == "STARTING"
            ]
            return found if len(found) > len(delays) else None

        seen = cluster.wait_until(starts, 30, f"{len(delays) + 1} starts of /crash")
        times = [t for _, t in seen[: len(delays) + 1]]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # Each restart waited at least its backoff, and the waits grew: no hot loop.
        for gap, delay in zip(gaps, delays, strict=True):
            assert gap >= delay - 0.01, (gaps, delays)
        assert all(b > a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
        # One task per start, each of them a new one that failed with the command's code.
        assert len({tid for tid, _ in seen}) == len(seen)
        with cluster.client() as c:
            for tid, _ in seen[: len(delays)]:
                ended = c.task(tid)
                assert (ended.state.value, ended.exit_code) == ("FAILED", 1)
        view = api.service("/crash")
        assert view.last_failure is not None and view.last_failure.state.value == "FAILED"
        assert len(api.service_tasks("/crash")) <= 1  # never more than the one instance at a time


def test_scaling_up_and_down_and_a_restart_that_replaces_every_task(
    cluster: Cluster, pids: Path
) -> None:
    cluster.add_agents(["a1", "a2"])
    sid = "/lab/portal"
    with cluster.client() as api, cluster.client() as c:
        create(api, {"id": sid, "instances": 2, "task": sleeper(pids)})
        two = cluster.wait_until(lambda: settled(api, sid, 2), 30, "2 tasks RUNNING")
        assert {t.hostname for t in two} == {"a1", "a2"}  # spread

        up = api.scale_service(sid, 4)
        four = cluster.wait_until(lambda: settled(api, sid, 4), 30, "4 tasks RUNNING")
        assert {t.id for t in two} <= {t.id for t in four}  # a scale restarts nothing
        assert sorted(t.hostname or "" for t in four) == ["a1", "a1", "a2", "a2"]
        assert api.deployment(up.id).state == "SUCCEEDED"
        # Each pid read now: RUNNING means spawned, and a task killed before its shell wrote
        # its pid would leave nothing to wait for.
        pid = {t.id: pid_of(pids, t.id) for t in four}

        down = api.scale_service(sid, 1)
        (one,) = cluster.wait_until(lambda: settled(api, sid, 1), 30, "1 task RUNNING")
        assert one.id in {t.id for t in two}  # the youngest go first
        assert api.deployment(down.id).state == "SUCCEEDED"
        stopped = [pid[t.id] for t in four if t.id != one.id]
        cluster.wait_until(
            lambda: not any(pid_alive(p) for p in stopped), 30, "their processes to end"
        )
        for t in four:
            assert c.task(t.id).state.value == ("RUNNING" if t.id == one.id else "KILLED")
        assert api.service(sid).spec.instances == 1

        api.scale_service(sid, 3)
        before = cluster.wait_until(lambda: settled(api, sid, 3), 30, "3 tasks RUNNING")
        config = api.service(sid).config
        restart = api.restart_service(sid)
        cluster.wait_until(
            lambda: api.deployment(restart.id).state == "SUCCEEDED", 60, "the restart to succeed"
        )
        after = cluster.wait_until(lambda: settled(api, sid, 3), 30, "3 new tasks RUNNING")
        assert not {t.id for t in before} & {t.id for t in after}  # every task replaced
        assert {t.run for t in after} == {config + 1} and api.service(sid).config == config + 1
        for t in before:
            assert c.task(t.id).state.value == "KILLED"
            assert not pid_alive(pid_of(pids, t.id))
        for t in after:
            assert pid_alive(pid_of(pids, t.id))


def test_a_process_service_answers_http_on_its_reported_host_port(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from a service\n")
    with cluster.client() as api:
        create(
            api,
            {
                "id": "/www",
                "instances": 1,
                "ports": [{"port": 0, "name": "http"}],
                "task": {
                    "shell": f"exec python3 -m http.server --directory {www} $PORT0",
                    "cpus": 0.1,
                    "mem": 64,
                },
            },
        )
        (task,) = cluster.wait_until(lambda: settled(api, "/www", 1), 30, "/www RUNNING")
        assert len(task.ports) == 1 and task.ports[0] > 0, task.ports
        url = f"http://127.0.0.1:{task.ports[0]}/hello.txt"

        def answer() -> httpx.Response | None:
            r = httpx.get(url, timeout=2)  # a refused connection is "not yet"
            return r if r.status_code == 200 else None

        r = cluster.wait_until(answer, 30, f"an answer on {url}")
        assert r.text == "hello from a service\n"


def test_a_task_that_fails_its_health_checks_is_killed_and_replaced(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    check = {
        "protocol": "HTTP",
        "port_index": 0,
        "grace_period": 0,
        "delay": 0,
        "interval": 0.3,
        "timeout": 0.2,
        "max_consecutive_failures": 2,
    }
    with cluster.client() as api:
        create(
            api,
            {
                "id": "/deaf",
                "instances": 1,
                "ports": [{"port": 0}],
                "health_checks": [check],
                # It runs, but nothing listens on its port: every check fails.
                "task": {"shell": "exec sleep 3600", "cpus": 0.1, "mem": 32},
            },
        )

        def first_kill() -> str | None:
            for e in cluster.events():
                if e.type == "task_state" and e.job == "/deaf" and e.state == "KILLED":
                    return e.task_id
            return None

        victim = cluster.wait_until(first_kill, 30, "the unhealthy task killed")
        history = [e for e in cluster.events() if e.task_id == victim]
        verdicts = [e.data["healthy"] for e in history if e.type == "task_health"]
        assert verdicts == [False]  # reported unhealthy once, then killed
        (killed,) = [e for e in history if e.state == "KILLED"]
        assert "failed 2 health checks in a row" in killed.reason
        assert "connection refused" in killed.reason

        def replacement() -> TaskView | None:
            tasks = [t for t in api.service_tasks("/deaf") if t.id != victim]
            return tasks[0] if tasks and tasks[0].state.value == "RUNNING" else None

        cluster.wait_until(replacement, 30, "a replacement running")
        view = api.service("/deaf")
        assert view.last_failure is not None and view.last_failure.task_id == victim
