"""Nothing accepted is lost: master and agent crashes, journal replay, agent loss."""

import signal
from pathlib import Path

from corral.spec.jobs import JobSpec
from tests.support.cluster import Cluster, shell_wait_for, wait_for_file


def spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate(fields)


def stdout_of(cluster: Cluster, agent: str, task_id: str) -> Path:
    return cluster.root / "agents" / agent / "tasks" / task_id / "sandbox" / "stdout"


def test_kill_9_of_the_master_loses_nothing_and_what_ran_meanwhile_is_reconciled(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    with cluster.client() as c:
        c.create_job(
            spec(
                name="survivor",
                array="0-1",
                task={
                    "shell": f"{shell_wait_for(gate)}; echo done",
                    "cpus": 0.5,
                },
            )
        )
        c.create_job(spec(name="other", task={"command": ["true"]}))
        assert cluster.wait_run("other") == "SUCCEEDED"
        cluster.wait_count("survivor", "RUNNING", 2)
        jobs_before = {j.name for j in c.jobs()}
        events_before = {t.id: [e.id for e in c.task(t.id).events or []] for t in c.tasks()}

    cluster.master.signal(signal.SIGKILL)  # type: ignore[union-attr]
    gate.touch()  # the tasks end while no master is up
    for i in (0, 1):
        wait_for_file(stdout_of(cluster, "a1", f"survivor.1.{i}.0"), 30, "done")
    cluster.start_master()

    with cluster.client() as c:
        assert cluster.wait_run("survivor") == "SUCCEEDED"
        assert {j.name for j in c.jobs()} == jobs_before
        for t in c.tasks(job="survivor"):
            assert (t.state.value, t.exit_code) == ("FINISHED", 0)
            history = c.task(t.id).events or []
            # Every event stored before the crash is still there, in order, then the end.
            assert [e.id for e in history][: len(events_before[t.id])] == events_before[t.id]
            assert [e.state.value for e in history][-1] == "FINISHED"
        assert c.task("other.1.0.0").state.value == "FINISHED"


def test_an_agent_killed_with_kill_9_reattaches_to_its_running_task(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    with cluster.client() as c:
        c.create_job(
            spec(
                name="steady",
                task={"shell": f"echo started; {shell_wait_for(gate)}; exit 3"},
            )
        )
        cluster.wait_task("steady.1.0.0", "RUNNING")
        cluster.agents["a1"].signal(signal.SIGKILL)
        cluster.start_agent("a1")
        gate.touch()
        assert cluster.wait_run("steady") == "FAILED"
        task = c.task("steady.1.0.0")
        # Its real exit code, not LOST, and it ran once.
        assert (task.state.value, task.exit_code) == ("FAILED", 3)
        assert c.logs("steady.1.0.0").data == "started\n"
        assert len(c.tasks(job="steady")) == 1


def test_updates_kept_in_the_agent_journal_survive_both_sides_restarting(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    with cluster.client() as c:
        c.create_job(
            spec(
                name="journaled",
                task={"shell": f"{shell_wait_for(gate)}; echo bye"},
            )
        )
        cluster.wait_task("journaled.1.0.0", "RUNNING")
    cluster.master.signal(signal.SIGKILL)  # type: ignore[union-attr]
    gate.touch()
    journal = cluster.root / "agents" / "a1" / "journal.jsonl"
    wait_for_file(journal, 30, '"state":"FINISHED"')  # the agent wrote the unsent update
    cluster.agents["a1"].signal(signal.SIGKILL)
    cluster.start_master()
    cluster.start_agent("a1")
    with cluster.client() as c:
        assert cluster.wait_run("journaled") == "SUCCEEDED"
        assert c.task("journaled.1.0.0").exit_code == 0


def test_a_lost_agent_s_tasks_are_replaced_elsewhere_and_killed_when_it_returns(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, lost_after=1.0)
    cluster.start_master()
    try:
        cluster.add_agent("a1")
        cluster.add_agent("a2")
        gate = tmp_path / "gate"
        with cluster.client() as c:
            c.create_job(
                spec(
                    name="mobile",
                    retries=2,
                    retry_backoff=0,
                    task={"shell": f"echo $CORRAL_TASK_ID; {shell_wait_for(gate)}"},
                )
            )
            first = cluster.wait_task("mobile.1.0.0", "RUNNING")
            victim = first.hostname or ""
            cluster.agents[victim].signal(signal.SIGKILL)
            cluster.wait_until(lambda: cluster.agent_state(victim) == "LOST", 30, "agent LOST")
            lost = c.task("mobile.1.0.0")
            assert lost.state.value == "LOST" and "silent" in lost.reason
            second = cluster.wait_task("mobile.1.0.1", "RUNNING")
            assert second.hostname != victim
            # The old agent comes back still running the old attempt: it must be killed.
            cluster.start_agent(victim)
            old_out = stdout_of(cluster, victim, "mobile.1.0.0")
            done = cluster.root / "agents" / victim / "tasks" / "mobile.1.0.0" / "meta" / "done"
            cluster.wait_until(done.exists, 30, "the old attempt to be stopped")
            assert old_out.read_text() == "mobile.1.0.0\n"
            gate.touch()
            assert cluster.wait_run("mobile") == "SUCCEEDED"
            assert c.task("mobile.1.0.0").state.value == "LOST"  # its end stays as recorded
    finally:
        cluster.stop()
