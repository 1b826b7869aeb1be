"""Batch jobs on a real multi-agent cluster: arrays, logs, retries, limits, kills."""

from pathlib import Path

import httpx

from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from tests.support.cluster import Cluster, shell_wait_for


def spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate(fields)


def test_an_array_runs_across_agents_and_each_task_sees_its_index(cluster: Cluster) -> None:
    cluster.add_agent("a1", cpus=1)
    cluster.add_agent("a2", cpus=1)
    with cluster.client() as c:
        c.create_job(
            spec(
                name="arr",
                array="0-7",
                placement="spread",
                task={
                    "shell": "echo index=$CORRAL_ARRAY_INDEX arg={index} host=$HOST",
                    "cpus": 0.5,
                    "mem": 64,
                },
            )
        )
        assert cluster.wait_run("arr") == "SUCCEEDED"
        tasks = c.tasks(job="arr")
        assert {t.hostname for t in tasks} == {"a1", "a2"}
        for t in tasks:
            assert t.exit_code == 0 and t.state.value == "FINISHED"
            out = c.logs(t.id).data
            assert out == f"index={t.index} arg={t.index} host={t.hostname}\n"
            history = [e.state.value for e in c.task(t.id).events or []]
            assert history == ["PENDING", "STAGING", "STARTING", "RUNNING", "FINISHED"]


def test_a_command_that_does_not_exist_fails_with_a_reason_naming_it(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(spec(name="nope", task={"command": ["no-such-program-xyz", "-v"]}))
        assert cluster.wait_run("nope") == "FAILED"
        task = c.task("nope.1.0.0")
        assert task.state.value == "FAILED"
        assert "no-such-program-xyz" in task.reason and "not found" in task.reason


def test_a_failing_task_is_retried_with_backoff_until_it_succeeds(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    marker = tmp_path / "attempts"
    # Fails on the first two attempts, succeeds on the third.
    script = f"echo x >> {marker}; [ $(wc -l < {marker}) -ge 3 ]"
    with cluster.client() as c:
        c.create_job(spec(name="flaky", retries=3, retry_backoff=0.2, task={"shell": script}))
        assert cluster.wait_run("flaky") == "SUCCEEDED"
        tasks = c.tasks(job="flaky")
        assert [(t.attempt, t.state.value) for t in tasks] == [
            (0, "FAILED"),
            (1, "FAILED"),
            (2, "FINISHED"),
        ]
        assert tasks[0].reason == "exited with status 1"
        # Each retry waited its backoff (0.2s, then 0.4s) after the previous attempt ended.
        for before, after, delay in ((tasks[0], tasks[1], 0.2), (tasks[1], tasks[2], 0.4)):
            assert before.finished_at is not None and after.started_at is not None
            assert (after.started_at - before.finished_at).total_seconds() >= delay
        run = c.run("flaky", 1)
        assert run.counts == {"FINISHED": 1}


def test_retries_run_out_and_the_run_fails(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(spec(name="bad", retries=1, retry_backoff=0, task={"shell": "exit 4"}))
        assert cluster.wait_run("bad") == "FAILED"
        assert [(t.attempt, t.exit_code) for t in c.tasks(job="bad")] == [(0, 4), (1, 4)]


def test_a_task_over_its_max_run_time_is_killed_and_failed(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(
            spec(
                name="slow", task={"command": ["sleep", "60"], "max_runtime": 0.5, "kill_grace": 1}
            )
        )
        assert cluster.wait_run("slow") == "FAILED"
        task = c.task("slow.1.0.0")
        assert task.state.value == "FAILED"
        assert "max run time of 0.5s exceeded" in task.reason


def test_killing_a_running_task_stops_it_and_records_who_asked(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(
            spec(name="victim", array="0-1", task={"command": ["sleep", "60"], "cpus": 0.1})
        )
        cluster.wait_count("victim", "RUNNING", 2)
        c.kill_task("victim.1.0.0")
        cluster.wait_task("victim.1.0.0", "KILLED")
        assert "killed by user" in c.task("victim.1.0.0").reason
        assert c.task("victim.1.1.0").state.value == "RUNNING"
        c.kill_job("victim")
        assert cluster.wait_run("victim") == "KILLED"


def test_memory_over_the_limit_fails_the_task_with_memory_limit(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    hog = "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    with cluster.client() as c:
        limits = c.agents()[0].cgroups
        assert "memory" in limits, f"the agent cannot enforce memory limits: {limits}"
        c.create_job(spec(name="hog", task={"command": ["python3", "-c", hog], "mem": 64}))
        assert cluster.wait_run("hog") == "FAILED"
        assert "memory limit" in c.task("hog.1.0.0").reason


def waiting(task: TaskView) -> TaskView | None:
    return task if task.reason else None


def test_work_waits_with_a_reason_when_no_agent_fits(cluster: Cluster) -> None:
    cluster.add_agent("small", cpus=1)
    with cluster.client() as c:
        c.create_job(spec(name="big", task={"command": ["true"], "cpus": 4}))
        task = cluster.wait_until(lambda: waiting(c.task("big.1.0.0")), 10, "a waiting reason")
        assert task.state.value == "PENDING"
        assert "cpu" in task.reason


def test_a_drained_agent_keeps_its_tasks_and_takes_no_new_work(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    with cluster.client() as c:
        c.create_job(
            spec(
                name="resident",
                task={"shell": shell_wait_for(gate), "cpus": 0.1},
            )
        )
        cluster.wait_task("resident.1.0.0", "RUNNING")
        [a1] = c.agents()
        assert c.drain_agent(a1.id).state.value == "DRAINING"
        c.create_job(spec(name="newcomer", task={"command": ["true"], "cpus": 0.1}))
        waiting = cluster.wait_until(
            lambda: waiting_reason(c.task("newcomer.1.0.0")), 10, "the newcomer to wait"
        )
        assert "not schedulable" in waiting
        cluster.add_agent("a2")
        assert cluster.wait_run("newcomer") == "SUCCEEDED"
        assert c.task("newcomer.1.0.0").hostname == "a2"
        gate.touch()
        assert cluster.wait_run("resident") == "SUCCEEDED"  # it ran on where it was
        assert c.task("resident.1.0.0").hostname == "a1"
        assert c.drain_agent(a1.id, False).state.value == "ACTIVE"


def waiting_reason(task: TaskView) -> str | None:
    return task.reason if task.reason.startswith("waiting") else None


def test_the_files_a_task_writes_in_its_sandbox_can_be_listed_and_read(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(
            spec(
                name="writer",
                task={"shell": "mkdir -p out && echo 42 > out/answer.txt && echo done"},
            )
        )
        assert cluster.wait_run("writer") == "SUCCEEDED"
    with httpx.Client(
        base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}
    ) as http:
        listing = http.get("/api/v1/tasks/writer.1.0.0/files").json()
        assert {f["path"] for f in listing["files"]} == {"stdout", "stderr", "out/answer.txt"}
        answer = http.get("/api/v1/tasks/writer.1.0.0/files/out/answer.txt").json()
        assert (answer["data"], answer["complete"]) == ("42\n", True)
        # Encoded so that no client normalizes it away: the agent must refuse to leave the box.
        escape = http.get("/api/v1/tasks/writer.1.0.0/files/%2E%2E/task.jsonl")
        assert escape.status_code == 404 and "no file '../task.jsonl'" in escape.text
        assert http.get("/api/v1/tasks/writer.1.0.0/files/out").status_code == 404
