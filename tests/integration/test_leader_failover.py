"""Three masters on PostgreSQL, two agents given every master's URL: the leader killed with
kill -9 again and again while an array of 1,000 tasks and two services run loses nothing and
doubles nothing; a leader frozen past its lease (SIGSTOP) and woken again writes nothing more
and follows the new one."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from corral.client import Client
from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from corral.store.store import Store
from tests.support.cluster import running_cluster, shell_wait_for, wait_for_file
from tests.support.ha import HaCluster, master_log
from tests.support.postgres import PostgresServer
from tests.support.services import create, settled

KILLS = 5
TASKS = 1000
SERVICES = ("/portal", "/db")


@pytest.fixture
def ha(
    postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[HaCluster]:
    """Three masters on a database of their own, and two agents."""
    database = postgres.take_database()
    try:
        with running_cluster(HaCluster(tmp_path, db=postgres.url(database)), request) as c:
            c.add_agents(["a1", "a2"], cpus=8, mem=8192)
            yield c
    finally:
        postgres.give_back(database)


def start_services(c: HaCluster) -> dict[str, set[str]]:
    """Two services of two instances each, running; answers their tasks' ids."""
    with c.client() as api:
        for service in SERVICES:
            task = {"command": ["sleep", "3600"], "cpus": 0.1, "mem": 16}
            create(api, {"id": service, "instances": 2, "task": task})
        return {s: {t.id for t in wait_settled(c, api, s)} for s in SERVICES}


def wait_settled(c: HaCluster, api: Client, service: str) -> list[TaskView]:
    return c.wait_until(lambda: settled(api, service, 2), 60, f"{service} running")


def progress(out: Path, at_least: int) -> Callable[[], bool]:
    return lambda: len(lines(out)) >= at_least


def leading_epoch(c: HaCluster) -> int:
    store = Store(c.db)
    try:
        row, _ = store.read_lease()
    finally:
        store.close()
    assert row is not None
    return row.epoch


def health(url: str) -> object:
    return httpx.get(f"{url}/health", timeout=5).json()


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_the_leader_killed_5_times_under_an_array_of_1000_tasks_loses_and_doubles_nothing(
    ha: HaCluster, tmp_path: Path
) -> None:
    services = start_services(ha)
    out = tmp_path / "indices"
    with ha.client() as api:
        api.create_job(
            JobSpec.model_validate(
                {
                    "name": "sweep",
                    "array": f"0-{TASKS - 1}",
                    "task": {
                        "shell": f"sleep 0.2; echo {{index}} >> {out}",
                        "cpus": 0.25,
                        "mem": 16,
                    },
                }
            )
        )
    leader = ha.leader_name
    for kill in range(KILLS):
        # Each kill lands while the array runs: some of it done since the last one.
        ha.wait_until(progress(out, len(lines(out)) + 20), 120, "the array to go on")
        assert len(lines(out)) < TASKS, f"the array ended before kill {kill + 1}"
        ha.procs[leader].signal(signal.SIGKILL)
        new = ha.wait_for_leader(30, other_than=leader)
        ha.procs[leader].start()  # back, as a follower: systemd would restart it
        leader = new

    assert ha.wait_run("sweep", timeout=300) == "SUCCEEDED"
    counts = Counter(lines(out))
    assert len(counts) == TASKS, f"{TASKS - len(counts)} tasks never ended"
    assert [i for i, n in counts.items() if n > 1] == [], "tasks ran twice"
    with ha.client() as api:
        tasks = list(api.tasks(job="sweep", limit=TASKS + 1))
        assert len(tasks) == TASKS
        assert {t.state.value for t in tasks} == {"FINISHED"}
        assert max(t.attempt for t in tasks) == 0, "a task was lost and retried"
        for service, ids in services.items():
            # The services' tasks ran on through every change of leader.
            assert {t.id for t in settled(api, service, 2) or []} == ids


def test_a_leader_frozen_past_its_lease_then_woken_writes_nothing_and_follows(
    ha: HaCluster, tmp_path: Path
) -> None:
    services = start_services(ha)
    gate = tmp_path / "gate"
    with ha.client() as api:
        task = {"shell": f"{shell_wait_for(gate)}; echo done", "cpus": 0.1, "mem": 16}
        api.create_job(JobSpec.model_validate({"name": "gated", "task": task}))
    gated = ha.wait_task("gated.1.0.0", "RUNNING")
    old = ha.leader_name
    old_url = ha.url_of(old)
    epoch = leading_epoch(ha)
    ha.procs[old].send(signal.SIGSTOP)
    try:
        # The task ends while its leader is frozen: its end is journaled by its agent, never
        # acknowledged by the old leader.
        gate.touch()
        sandbox = ha.root / "agents" / (gated.hostname or "") / "tasks" / gated.id / "sandbox"
        wait_for_file(sandbox / "stdout", 30, "done")
        new = ha.wait_for_leader(30, other_than=old)
        # A write sent to the frozen leader waits in its socket until it wakes.
        answer: dict[str, httpx.Response] = {}
        late = threading.Thread(
            target=lambda: answer.setdefault(
                "late",
                httpx.post(
                    f"{old_url}/api/v1/jobs",
                    json={"name": "late", "task": {"command": ["true"]}},
                    headers={"Authorization": f"Bearer {ha.token}"},
                    timeout=30,
                ),
            )
        )
        late.start()
    finally:
        ha.procs[old].send(signal.SIGCONT)
    late.join(30)
    ha.wait_until(lambda: "stepping down" in master_log(ha, old), 30, "the old leader to step down")
    assert ha.leader() == new
    assert leading_epoch(ha) == epoch + 1  # one change of leader, no more
    following = {"status": "ok", "leading": False, "leader": ha.url_of(new)}
    ha.wait_until(lambda: health(old_url) == following, 10, "the old leader to follow")

    # The late write was refused (503: by the fence, or as nobody was known to lead just after
    # the old leader stepped down), or handed to the new leader once the old one knew it
    # followed: either way only the new epoch wrote it.
    response = answer["late"]
    with Client(ha.url_of(new), ha.token) as api:
        names = {j.name for j in api.jobs()}
        if response.status_code == 503:
            assert response.json()["detail"] in (
                f"this master (epoch {epoch}) is no longer the leader: epoch {epoch + 1} leads now",
                "this master does not lead: it writes nothing",
                "no master leads at the moment; try again shortly",
            )
            assert "late" not in names
        else:
            assert response.status_code == 201, response.text
            assert response.headers["x-corral-leader"] == ha.url_of(new)
            assert "late" in names
        # Nothing the old leader decided on waking (agents silent, tasks lost) was applied:
        # the agents, cut off with it, found the new leader.
        ha.wait_until(lambda: ha.agent_state("a1") == ha.agent_state("a2") == "ACTIVE", 30, "back")
        for service, ids in services.items():
            assert {t.id for t in settled(api, service, 2) or []} == ids
    # The agent's journal replayed the end to the new leader: the task ran once and FINISHED.
    ended = ha.wait_task("gated.1.0.0", "FINISHED")
    assert (ended.exit_code, ended.attempt, ended.hostname) == (0, 0, gated.hostname)
