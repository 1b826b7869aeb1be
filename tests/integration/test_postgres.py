"""A real master on PostgreSQL with a real agent: work runs, a kill -9 of the master loses
nothing, and a database that stops under a running master is answered with 503 and nothing
half-written until it is back, then the master goes on by itself."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.spec.jobs import JobSpec
from tests.support.cluster import CORRAL, Cluster, Proc, running_cluster, shell_wait_for
from tests.support.postgres import PostgresServer


@pytest.fixture
def pg_cluster(
    postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """A master on a database of its own (``corral master --db postgresql://…``), no agent."""
    database = postgres.take_database()
    c = Cluster(tmp_path)
    c.master = Proc(
        [
            *CORRAL,
            "master",
            "--db",
            postgres.url(database),
            "--listen",
            f"127.0.0.1:{c.port}",
            "--data",
            str(tmp_path / "master"),
            "--lost-after",
            str(c.lost_after),
        ],
        tmp_path / "master.log",
    )
    try:
        with running_cluster(c, request) as running:
            yield running
    finally:
        postgres.give_back(database)


def master_log(cluster: Cluster) -> str:
    assert cluster.master is not None
    return cluster.master.log.read_text()


def sweep(name: str, array: str) -> JobSpec:
    return JobSpec.model_validate(
        {"name": name, "array": array, "task": {"shell": "echo {index}", "cpus": 0.1}}
    )


def test_an_array_runs_on_postgresql_and_a_master_killed_with_kill_9_keeps_it_all(
    pg_cluster: Cluster,
) -> None:
    pg_cluster.add_agent("a1", cpus=2)
    with pg_cluster.client() as c:
        c.create_job(sweep("sweep", "0-19"))
        assert pg_cluster.wait_run("sweep", timeout=60) == "SUCCEEDED"
        before = {t.id: (t.state.value, t.exit_code) for t in c.tasks(job="sweep")}
        events_before = [e.id for e in c.task("sweep.1.7.0").events or []]
    assert len(before) == 20 and set(before.values()) == {("FINISHED", 0)}

    pg_cluster.master.signal(signal.SIGKILL)  # type: ignore[union-attr]
    pg_cluster.start_master()

    with pg_cluster.client() as c:
        assert c.run("sweep", 1).state.value == "SUCCEEDED"
        assert {t.id: (t.state.value, t.exit_code) for t in c.tasks(job="sweep")} == before
        assert [e.id for e in c.task("sweep.1.7.0").events or []] == events_before
        pg_cluster.wait_until(lambda: pg_cluster.agent_state("a1") == "ACTIVE", 30, "a1 back")
        c.create_job(sweep("after", "0-1"))
        assert pg_cluster.wait_run("after", timeout=60) == "SUCCEEDED"


def test_while_the_database_is_down_a_submit_is_a_503_that_stores_nothing_and_the_master_recovers(
    pg_cluster: Cluster, postgres: PostgresServer, tmp_path: Path
) -> None:
    pg_cluster.add_agent("a1", cpus=2)
    gate = tmp_path / "gate"
    across = {"name": "across", "task": {"shell": shell_wait_for(gate), "cpus": 0.1}}
    with pg_cluster.client() as c:
        c.create_job(JobSpec.model_validate(across))
        pg_cluster.wait_count("across", "RUNNING", 1)
    headers = {"Authorization": f"Bearer {pg_cluster.token}"}
    job = sweep("refused", "0-4").model_dump(mode="json", exclude_none=True)
    postgres.stop("fast")
    try:
        # The task ends while nothing can be stored: its agent keeps the update until the
        # master can take it.
        gate.touch()
        answer = httpx.post(f"{pg_cluster.url}/api/v1/jobs", json=job, headers=headers, timeout=30)
        assert answer.status_code == 503, answer.text
        assert "state store is unavailable" in answer.json()["detail"]
        marathon = httpx.get(f"{pg_cluster.url}/v2/apps", headers=headers, timeout=30)
        assert marathon.status_code == 503 and "unavailable" in marathon.json()["message"]
    finally:
        postgres.start()

    # The next calls succeed without a restart of the master; nothing of the refused submit
    # was kept, the task that ended meanwhile is recorded, and the agent runs what comes next.
    with pg_cluster.client() as c:
        assert [j.name for j in c.jobs()] == ["across"]
        assert c.tasks(job="refused") == []
        assert pg_cluster.wait_run("across", timeout=60) == "SUCCEEDED"
        c.create_job(sweep("accepted", "0-4"))
        pg_cluster.wait_until(lambda: pg_cluster.agent_state("a1") == "ACTIVE", 30, "a1 back")
        assert pg_cluster.wait_run("accepted", timeout=60) == "SUCCEEDED"
    assert pg_cluster.master is not None and pg_cluster.master.running


def test_a_job_scheduled_every_second_fires_again_once_the_database_is_back(
    pg_cluster: Cluster, postgres: PostgresServer
) -> None:
    pg_cluster.add_agent("a1", cpus=2)
    every_second = {
        "name": "tick",
        "schedule": "R//PT1S",
        "missed": "skip",
        "task": {"shell": "true", "cpus": 0.1},
    }
    with pg_cluster.client() as c:
        c.create_job(JobSpec.model_validate(every_second))
        pg_cluster.wait_until(lambda: len(c.runs("tick")) >= 2, 30, "two runs of tick")
    postgres.stop("fast")
    try:
        # Until the schedule loop found the store gone at a firing.
        pg_cluster.wait_until(
            lambda: "schedule pass failed" in master_log(pg_cluster), 30, "a failed firing"
        )
    finally:
        postgres.start()
    with pg_cluster.client() as c:
        before = max(r.number for r in c.runs("tick"))
        pg_cluster.wait_until(
            lambda: max(r.number for r in c.runs("tick")) >= before + 2, 30, "tick firing again"
        )
    assert "Traceback" not in master_log(pg_cluster)


def test_an_agents_report_refused_by_a_stopped_database_is_logged_once_and_replayed_after(
    pg_cluster: Cluster, postgres: PostgresServer, tmp_path: Path
) -> None:
    pg_cluster.add_agent("a1", cpus=2)
    gate = tmp_path / "gate"
    job = {"name": "ends", "task": {"shell": shell_wait_for(gate) + "; exit 3", "cpus": 0.1}}
    with pg_cluster.client() as c:
        c.create_job(JobSpec.model_validate(job))
        pg_cluster.wait_count("ends", "RUNNING", 1)
    postgres.stop("fast")
    try:
        gate.touch()  # the task fails while its end cannot be stored
        pg_cluster.wait_until(
            lambda: "state store is unavailable" in master_log(pg_cluster),
            30,
            "the master to refuse the agent's report",
        )
    finally:
        postgres.start()
    # The agent's journal kept the end: replayed once the master can store it.
    assert pg_cluster.wait_run("ends", timeout=60) == "FAILED"
    with pg_cluster.client() as c:
        (task,) = c.tasks(job="ends")
        assert (task.state.value, task.exit_code) == ("FAILED", 3)
    assert "Traceback" not in master_log(pg_cluster)
