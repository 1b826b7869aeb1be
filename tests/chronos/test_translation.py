"""Chronos job JSON in and out, in process: what is stored for what is posted, and what the
listing, search, graph and stat endpoints answer. No agent runs, so runs stay pending."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.agent.executors.docker_config import command_fields
from corral.api.chronos import histogram, matches, percentile, run_durations, task_stat
from corral.master.master import Master
from corral.spec.chronos import format_duration, parse_duration
from corral.spec.jobs import JobSpec
from corral.spec.protocol import TaskLaunch

FUTURE = "R/2100-01-01T00:00:00Z/PT1H"


def chronos(name: str = "hello", **extra: Any) -> dict[str, Any]:
    """A scheduled Chronos job as chronos-python users write it."""
    return {
        "name": name,
        "command": "echo hello",
        "schedule": FUTURE,
        "owner": "ops@example.org",
        "disabled": False,
        **extra,
    }


def stored(master: Master, name: str) -> JobSpec:
    row = master.store.job(name)
    assert row is not None, f"{name} was not stored"
    return JobSpec.model_validate(row["spec"])


def post(api: TestClient, body: dict[str, Any], path: str = "/scheduler/iso8601") -> None:
    r = api.post(path, json=body)
    assert r.status_code == 204, r.text
    assert r.content == b""


def test_a_shell_job_is_stored_with_its_command_line_run_by_the_shell(
    api: TestClient, master: Master
) -> None:
    post(api, chronos(command="echo $HOME > /tmp/x", arguments=["ignored"]))
    task = stored(master, "hello").task
    assert task.shell == "echo $HOME > /tmp/x" and task.command is None


def test_a_job_without_shell_runs_its_command_and_arguments_as_argv(
    api: TestClient, master: Master
) -> None:
    post(api, chronos(command="/bin/echo", shell=False, arguments=["a b", "$HOME", "'q'"]))
    task = stored(master, "hello").task
    assert task.command == ["/bin/echo", "a b", "$HOME", "'q'"] and task.shell is None


def test_numeric_strings_are_accepted_for_cpus_mem_and_disk(
    api: TestClient, master: Master
) -> None:
    post(api, chronos(cpus="0.5", mem="512", disk="100.5"))
    task = stored(master, "hello").task
    assert (task.cpus, task.mem, task.disk) == (0.5, 512, 101)


def test_chronos_defaults_apply_to_what_the_job_leaves_out(api: TestClient, master: Master) -> None:
    post(api, {"name": "bare", "command": "true", "schedule": FUTURE, "cpus": 0})
    spec = stored(master, "bare")
    assert (spec.task.cpus, spec.task.mem, spec.task.disk) == (0.1, 128, 256)
    assert (spec.epsilon, spec.retries, spec.timezone) == (60.0, 2, "UTC")


def test_every_job_field_reaches_the_native_spec(api: TestClient, master: Master) -> None:
    body = chronos(
        schedule="R5/2100-03-01T02:30:00/P1D",
        scheduleTimeZone="Europe/Berlin",
        epsilon="PT15M",
        retries=0,
        description="nightly export",
        disabled=True,
        concurrent=True,
        softError=True,
        environmentVariables=[{"name": "MODE", "value": "fast"}, {"name": "N", "value": 3}],
        constraints=[["rack", "EQUALS", "a"], ["hostname", "UNIQUE"]],
        successCount=7,
        lastError="",
        executor="",
    )
    post(api, body)
    spec = stored(master, "hello")
    assert spec.schedule == "R5/2100-03-01T02:30:00/P1D" and spec.timezone == "Europe/Berlin"
    assert (spec.epsilon, spec.retries, spec.owner) == (900.0, 0, "ops@example.org")
    assert (spec.disabled, spec.concurrent, spec.soft_error) == (True, True, True)
    assert spec.description == "nightly export"
    assert spec.task.env == {"MODE": "fast", "N": "3"}
    rules = [(c.field, c.operator.value, c.value) for c in spec.constraints]
    assert rules == [("rack", "CLUSTER", "a"), ("hostname", "UNIQUE", None)]


def test_a_docker_job_keeps_its_image_network_volumes_user_and_parameters(
    api: TestClient, master: Master, volume_root: Path
) -> None:
    container = {
        "type": "DOCKER",
        "image": "corral-test/busybox",
        "network": "HOST",
        "forcePullImage": True,
        "volumes": [
            {"containerPath": "/in", "hostPath": str(volume_root / "in"), "mode": "RO"},
            {"containerPath": "/out", "hostPath": str(volume_root / "out"), "mode": "RW"},
        ],
        "parameters": [{"key": "shm-size", "value": "64m"}],
    }
    post(api, chronos(container=container, runAsUser="nobody"))
    docker = stored(master, "hello").task.docker
    assert docker is not None
    assert (docker.image, docker.network, docker.user, docker.force_pull) == (
        "corral-test/busybox",
        "HOST",
        "nobody",
        True,
    )
    assert [(v.container_path, v.mode) for v in docker.volumes] == [("/in", "RO"), ("/out", "RW")]
    assert [(p.key, p.value) for p in docker.parameters] == [("shm-size", "64m")]


@pytest.mark.parametrize(
    ("job", "fields"),
    [
        (
            {"command": "echo $X > /out/a && ls", "arguments": ["unused"]},
            {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo $X > /out/a && ls"]},
        ),
        (
            {"command": "/bin/echo", "shell": False, "arguments": ["a b", "$X", ""]},
            {"Cmd": ["/bin/echo", "a b", "$X", ""]},
        ),
    ],
)
def test_the_container_runs_exactly_the_command_line_the_job_gives(
    api: TestClient, master: Master, job: dict[str, Any], fields: dict[str, Any]
) -> None:
    post(api, chronos(container={"type": "DOCKER", "image": "busybox"}, **job))
    assert api.put("/scheduler/job/hello").status_code == 204
    row = master.store.task("hello.1.0.0")
    assert row is not None
    launch = TaskLaunch.model_validate(row["launch"])
    assert launch.docker is not None
    assert command_fields(launch, launch.docker) == fields


def test_a_docker_job_without_command_runs_the_image_default(
    api: TestClient, master: Master
) -> None:
    post(api, chronos(command="", container={"type": "DOCKER", "image": "busybox"}))
    task = stored(master, "hello").task
    assert task.command is None and task.shell is None


def test_the_v1_prefix_serves_the_same_api(api: TestClient, master: Master) -> None:
    post(api, chronos(), path="/v1/scheduler/iso8601")
    assert [j["name"] for j in api.get("/v1/scheduler/jobs").json()] == ["hello"]
    assert api.put("/scheduler/iso8601", json=chronos(command="echo again")).status_code == 204
    assert stored(master, "hello").task.shell == "echo again"


def test_the_listing_answers_chronos_json_with_schedule_as_given_and_counts(
    api: TestClient,
) -> None:
    post(api, chronos(cpus="0.5", mem="512", epsilon="PT30M"))
    post(api, chronos("child", schedule=None, parents=["hello"]), "/scheduler/dependency")
    jobs = {j["name"]: j for j in api.get("/scheduler/jobs").json()}
    hello, child = jobs["hello"], jobs["child"]
    assert hello["schedule"] == FUTURE and hello["scheduleTimeZone"] == "UTC"
    assert "parents" not in hello and "schedule" not in child
    assert child["parents"] == ["hello"]
    assert (hello["command"], hello["shell"], hello["arguments"]) == ("echo hello", True, [])
    assert (hello["cpus"], hello["mem"], hello["disk"], hello["epsilon"]) == (
        0.5,
        512,
        256,
        "PT1800S",
    )
    assert (hello["successCount"], hello["errorCount"]) == (0, 0)
    assert (hello["lastSuccess"], hello["lastError"]) == ("", "")
    assert (hello["owner"], hello["async"], hello["retries"]) == ("ops@example.org", False, 2)


def test_posting_back_what_the_listing_answered_changes_nothing(
    api: TestClient, master: Master, volume_root: Path
) -> None:
    container = {
        "type": "DOCKER",
        "image": "img",
        "volumes": [{"containerPath": "/d", "hostPath": str(volume_root), "mode": "RO"}],
    }
    post(api, chronos(shell=False, command="/bin/run", arguments=["-v"], container=container))
    before = stored(master, "hello")
    (listed,) = api.get("/scheduler/jobs").json()
    post(api, listed)
    assert stored(master, "hello") == before


def test_run_now_starts_a_run_with_the_arguments_appended(api: TestClient, master: Master) -> None:
    post(api, chronos(command="/bin/echo", shell=False, arguments=["base"]))
    r = api.put("/scheduler/job/hello", params={"arguments": "-debug 'two words'"})
    assert r.status_code == 204 and r.content == b""
    (task,) = api.get("/api/v1/tasks", params={"job": "hello"}).json()
    assert task["command"] == ["/bin/echo", "base", "-debug", "two words"]


def test_a_parent_with_children_is_not_deleted_and_the_answer_names_them(
    api: TestClient, master: Master
) -> None:
    post(api, chronos("root"))
    post(api, chronos("leaf", schedule=None, parents=["root"]), "/scheduler/dependency")
    r = api.delete("/scheduler/job/root")
    assert r.status_code == 400 and "leaf" in r.json()["message"]
    assert master.store.job("root") is not None
    assert api.delete("/scheduler/job/leaf").status_code == 204
    assert api.delete("/scheduler/job/root").status_code == 204
    assert api.get("/scheduler/jobs").json() == []


def test_killing_the_tasks_of_a_job_answers_204(api: TestClient) -> None:
    post(api, chronos())
    api.put("/scheduler/job/hello")
    r = api.delete("/scheduler/task/kill/hello")
    assert r.status_code == 204 and r.content == b""
    (task,) = api.get("/api/v1/tasks", params={"job": "hello"}).json()
    assert task["state"] == "KILLED"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/scheduler/job/nope"),
        ("DELETE", "/scheduler/job/nope"),
        ("DELETE", "/scheduler/task/kill/nope"),
        ("GET", "/scheduler/job/stat/nope"),
    ],
)
def test_an_unknown_job_is_a_404_naming_it(api: TestClient, method: str, path: str) -> None:
    r = api.request(method, path)
    assert r.status_code == 404 and "nope" in r.json()["message"]


def test_search_matches_name_command_or_any_with_limit_and_offset(api: TestClient) -> None:
    for name, command in [("export-a", "pg_dump a"), ("export-b", "pg_dump b"), ("clean", "rm")]:
        post(api, chronos(name, command=command))

    def names(**params: Any) -> list[str]:
        r = api.get("/scheduler/jobs/search", params=params)
        assert r.status_code == 200, r.text
        return [j["name"] for j in r.json()]

    assert names(name="EXPORT") == ["export-a", "export-b"]
    assert names(command="dump b") == ["export-b"]
    assert names(any="rm") == ["clean"]
    assert names(name="export", limit=1, offset=1) == ["export-b"]
    assert names() == ["clean", "export-a", "export-b"]
    assert api.get("/scheduler/jobs/search", params={"limit": "x"}).status_code == 400


def test_the_graph_lists_every_job_as_a_node_and_every_dependency_as_a_link(
    api: TestClient,
) -> None:
    post(api, chronos("root"))
    post(api, chronos("leaf", schedule=None, parents=["root"]), "/scheduler/dependency")
    r = api.get("/scheduler/graph/csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert sorted(r.text.splitlines()) == [
        "link,root,leaf",
        "node,leaf,fresh,idle",
        "node,root,fresh,idle",
    ]


def test_the_stat_of_a_job_without_runs_is_an_empty_histogram(api: TestClient) -> None:
    post(api, chronos())
    body = api.get("/scheduler/job/stat/hello").json()
    assert body["histogram"]["count"] == 0 and body["taskStatHistory"] == []


def test_run_times_are_measured_from_the_first_task_start_to_the_outcome() -> None:
    runs = [
        {"number": 1, "state": "SUCCEEDED", "created_at": 0.0, "finished_at": 12.0},
        {"number": 2, "state": "FAILED", "created_at": 20.0, "finished_at": 25.0},
        {"number": 3, "state": "KILLED", "created_at": 30.0, "finished_at": 31.0},
        {"number": 4, "state": "RUNNING", "created_at": 40.0, "finished_at": None},
    ]
    tasks = [
        {"run": 1, "started_at": 2.0},
        {"run": 1, "started_at": 4.0},
        {"run": 4, "started_at": 41.0},
    ]
    assert run_durations(runs, tasks) == [10_000.0, 5_000.0]


def test_percentiles_interpolate_as_chronos_metrics_do() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.99) == 4.0
    assert percentile(values, 0.1) == 1.0
    assert percentile([], 0.5) == 0.0
    h = histogram([4.0, 1.0, 3.0, 2.0])
    assert (h["median"], h["mean"], h["count"], h["75thPercentile"]) == (2.5, 2.5, 4, 3.75)


def test_a_task_stat_reads_as_chronos_writes_it() -> None:
    row = {
        "id": "j.1.0.0",
        "job": "j",
        "agent_id": "a1",
        "state": "FINISHED",
        "started_at": 1_800_000_000.0,
        "finished_at": 1_800_003_725.0,
    }
    assert task_stat(row) == {
        "taskId": "j.1.0.0",
        "jobName": "j",
        "slaveId": "a1",
        "startTime": "01/15/27 08:00:00",
        "endTime": "01/15/27 09:02:05",
        "status": "Success",
        "duration": "1h2m5s",
    }


def test_search_terms_combine_as_in_chronos() -> None:
    job = {"name": "Nightly-Export", "command": "pg_dump db"}
    assert matches(job, "export", None, None)
    assert not matches(job, "export", "rsync", None)
    assert matches(job, "export", "rsync", "dump")
    assert not matches(job, None, None, "rsync")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT60S", 60.0), ("PT15M", 900.0), ("P1DT1H", 90000.0), ("P2W", 1209600.0), ("PT0.5S", 0.5)],
)
def test_epsilon_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_epsilon_is_written_in_seconds() -> None:
    assert (format_duration(60.0), format_duration(0.5)) == ("PT60S", "PT0.5S")


def test_without_credentials_the_chronos_api_challenges_for_basic_auth(
    anonymous: TestClient,
) -> None:
    for path in ("/scheduler/jobs", "/v1/scheduler/jobs"):
        r = anonymous.get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="corral"'
        assert "message" in r.json()
    assert anonymous.get("/api/v1/jobs").headers["www-authenticate"].startswith("Bearer")


def test_basic_auth_with_the_token_as_password_is_accepted(
    anonymous: TestClient, token: str
) -> None:
    creds = base64.b64encode(f"anyone:{token}".encode()).decode()
    r = anonymous.get("/scheduler/jobs", headers={"Authorization": f"Basic {creds}"})
    assert r.status_code == 200 and r.json() == []
