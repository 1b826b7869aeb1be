"""Jobs, tasks and agents against a real ``corral up``: apply, show, kill, rm, JSON, errors."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path

import pytest

from corral.client import ApiError, AsyncClient, Client
from corral.spec.jobs import JobSpec, TaskTemplate
from tests.cli.harness import Corral, Server, ok, tasks_of
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration


def test_apply_creates_a_job_from_yaml_then_reports_it_unchanged(
    corral: Corral, job_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(f"name: {job_name}\ntask:\n  command: [echo, hi]\n  mem: 64\n")
    assert ok(corral("apply", "-f", str(path))) == f"{job_name}: created (run 1 started)\n"
    assert ok(corral("apply", "-f", str(path))) == f"{job_name}: unchanged\n"
    path.write_text(f"name: {job_name}\ntask:\n  command: [echo, hello]\n  mem: 64\n")
    [result] = json.loads(ok(corral("apply", "-f", str(path), "--json")))
    assert result["action"] == "updated" and result["job"]["spec"]["task"]["command"][1] == "hello"


def test_job_show_of_an_unknown_job_exits_1_saying_not_found(corral: Corral) -> None:
    result = corral("job", "show", "no-such-job")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "not found" in result.stderr


def test_json_output_of_every_listing_parses(corral: Corral, job_name: str) -> None:
    ok(corral("run", "--name", job_name, "--wait", "--", "true"))
    jobs = json.loads(ok(corral("jobs", "--json")))
    assert job_name in [j["name"] for j in jobs]
    shown = json.loads(ok(corral("job", "show", job_name, "--json")))
    assert shown["job"]["name"] == job_name and len(shown["runs"]) == len(shown["tasks"]) == 1
    task = json.loads(ok(corral("task", "show", shown["tasks"][0]["id"], "--json")))
    assert [e["state"] for e in task["events"]][-1] == "FINISHED"
    agents = json.loads(ok(corral("agents", "--json")))
    assert agents and all(a["connected"] for a in agents)


def test_tables_show_the_job_its_runs_and_the_task_history(corral: Corral, job_name: str) -> None:
    ok(corral("run", "--name", job_name, "--wait", "--", "true"))
    assert job_name in ok(corral("jobs"))
    assert "SUCCEEDED" in ok(corral("job", "show", job_name))
    [task] = tasks_of(corral, job_name)
    assert "FINISHED" in ok(corral("task", "show", task["id"]))
    assert "ACTIVE" in ok(corral("agents"))


def test_a_killed_job_can_be_deleted_and_is_then_not_found(
    corral: Corral, job_name: str, server: Server
) -> None:
    ok(corral("run", "--name", job_name, "--", "sleep", "60"))
    ok(corral("job", "kill", job_name))
    # The kill takes effect when the agent reports the task KILLED.
    watcher = EventWatcher(server.url, server.token)
    with Client(server.url, server.token) as client:
        watcher.wait_until(lambda: client.run(job_name, 1).state.terminal, 30, "run killed")
    watcher.close()
    assert ok(corral("job", "rm", job_name)) == f"{job_name}: deleted\n"
    assert corral("job", "show", job_name).exit_code == 1


def test_job_run_starts_a_second_run(corral: Corral, job_name: str) -> None:
    ok(corral("run", "--name", job_name, "--wait", "--", "true"))
    assert "SUCCEEDED" in ok(corral("job", "run", job_name, "--wait"))
    runs = json.loads(ok(corral("job", "show", job_name, "--json")))["runs"]
    assert sorted(r["number"] for r in runs) == [1, 2]


def test_the_master_names_the_bad_field_of_an_invalid_spec(server: Server, job_name: str) -> None:
    # model_construct skips local validation, so the master's own 422 is what comes back.
    bad = JobSpec.model_construct(
        name=job_name, task=TaskTemplate.model_construct(command=["true"], cpus=-1.0)
    )
    with Client(server.url, server.token) as client, pytest.raises(ApiError) as caught:
        client.create_job(bad)
    assert caught.value.status == 422
    assert "task.cpus: Input should be greater than 0" in caught.value.message


def test_a_wrong_token_is_refused(server: Server) -> None:
    with Client(server.url, "wrong") as client, pytest.raises(ApiError) as caught:
        client.jobs()
    assert caught.value.status == 401


def test_the_event_stream_reports_a_new_job(server: Server, job_name: str) -> None:
    async def main() -> str | None:
        async with AsyncClient(server.url, server.token) as client:
            await client.create_job(JobSpec(name=job_name, task=TaskTemplate(command=["true"])))
            async with aclosing(client.events(since=0)) as events:
                async for event in events:
                    if event.job == job_name:
                        return event.type
        return None

    assert asyncio.run(asyncio.wait_for(main(), 20)) == "job_created"


def test_job_graph_prints_the_chain_and_scheduled_jobs_show_their_next_run(
    corral: Corral, job_name: str, server: Server
) -> None:
    first, second, third = (f"{job_name}-{i}" for i in range(3))
    with Client(server.url, server.token) as client:
        client.create_job(JobSpec.model_validate({"name": first, "task": {"command": ["true"]}}))
        for parent, child in ((first, second), (second, third)):
            client.create_job(
                JobSpec.model_validate(
                    {"name": child, "parents": [parent], "task": {"command": ["true"]}}
                )
            )
        client.create_job(
            JobSpec.model_validate(
                {
                    "name": f"{job_name}-cron",
                    "schedule": "0 3 * * *",
                    "timezone": "Europe/Berlin",
                    "task": {"command": ["true"]},
                }
            )
        )
    tree = ok(corral("job", "graph"))
    assert f"{first}\n  └─ {second}\n    └─ {third}" in tree
    edges = json.loads(ok(corral("job", "graph", "--json")))
    assert {"parent": first, "child": second} in edges
    scheduled = json.loads(ok(corral("jobs", "--scheduled", "--json")))
    [cron] = [j for j in scheduled if j["name"] == f"{job_name}-cron"]
    assert cron["next_run"] is not None and cron["runs"] == 0


def test_tasks_come_a_page_at_a_time_each_page_saying_where_the_next_starts(
    corral: Corral, job_name: str
) -> None:
    ok(corral("run", "--name", job_name, "--array", "0-4", "--", "true"))
    first = corral("tasks", "--job", job_name, "--limit", "3", "--json")
    cursor = first.stderr.strip().removeprefix("more: --after ")
    rest = corral("tasks", "--job", job_name, "--limit", "3", "--after", cursor, "--json")
    listed = [t["id"] for t in json.loads(ok(first)) + json.loads(ok(rest))]
    assert listed == [f"{job_name}.1.{i}.0" for i in range(5)]
    assert rest.stderr == ""  # the last page names no next one
