"""Nothing accepted is lost: master and agent crashes, journal replay, agent loss."""

import os
import signal
from pathlib import Path

from corral.agent import task_record
from corral.spec.jobs import JobSpec
from tests.support.cluster import Cluster, shell_wait_for, wait_for_file
from tests.support.services import pid_alive


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


TASKS = 50
DOWN = range(25)  # the tasks that end while their agent is down (the rest end after)


def exit_code_of(index: int) -> int:
    """What a task of the 50 exits with: some succeed, the others fail with a code of their
    own, so a status lost or mixed up shows."""
    return index % 5 if index in DOWN else 0


def test_an_agent_killed_with_kill_9_keeps_its_50_tasks_and_loses_none_of_their_ends(
    cluster: Cluster, tmp_path: Path
) -> None:
    """kill -9 of an agent running 50 tasks, 25 of which end while it is down, then a
    restart: none is started again (each wrote its pid once) and every end is reported with
    its own exit status."""
    cluster.add_agent("a1", cpus=2, mem=4096)
    pipes = tmp_path / "pipes"
    pipes.mkdir()
    for i in range(TASKS):
        os.mkfifo(pipes / f"{i}.fifo")
    # Each task notes its pid (appended: a second start would add a line), then blocks on its
    # own pipe (no polling: 50 of them) until the test writes the code it exits with.
    shell = f"echo $$ >> {pipes}/{{index}}.pids; read code < {pipes}/{{index}}.fifo; exit $code"
    task = {"shell": shell, "cpus": 0.02, "mem": 16}
    with cluster.client() as c:
        c.create_job(spec(name="fifty", array=f"0-{TASKS - 1}", task=task))
        cluster.wait_count("fifty", "RUNNING", TASKS, timeout=120)
        noted = [pipes / f"{i}.pids" for i in range(TASKS)]
        cluster.wait_until(
            lambda: all(p.exists() and p.read_text().endswith("\n") for p in noted),
            30,
            "every task to note its pid",
        )
        pids = {i: int(noted[i].read_text()) for i in range(TASKS)}

        cluster.agents["a1"].signal(signal.SIGKILL)
        for i in DOWN:
            (pipes / f"{i}.fifo").write_text(f"{exit_code_of(i)}\n")
        cluster.wait_until(lambda: not any(pid_alive(pids[i]) for i in DOWN), 30, "25 tasks to end")
        assert all(pid_alive(pids[i]) for i in range(TASKS) if i not in DOWN)
        cluster.start_agent("a1")
        for i in range(TASKS):
            if i not in DOWN:
                (pipes / f"{i}.fifo").write_text("0\n")
        assert cluster.wait_run("fifty", timeout=120) == "FAILED"  # some ended with 1-4

        tasks = c.tasks(job="fifty")
        # 0 tasks restarted: one attempt each, each started once, by the same process.
        assert len(tasks) == TASKS
        assert {t.id for t in tasks} == {f"fifty.1.{i}.0" for i in range(TASKS)}
        for i in range(TASKS):
            assert (pipes / f"{i}.pids").read_text() == f"{pids[i]}\n"
        # 0 updates lost: every end recorded with its own exit status.
        ends = {t.id: (t.state.value, t.exit_code) for t in tasks}
        expected = {
            f"fifty.1.{i}.0": ("FINISHED" if exit_code_of(i) == 0 else "FAILED", exit_code_of(i))
            for i in range(TASKS)
        }
        assert ends == expected


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
            old = cluster.root / "agents" / victim / "tasks" / "mobile.1.0.0"
            cluster.wait_until(lambda: task_record.read(old).ended, 30, "the old attempt to stop")
            assert old_out.read_text() == "mobile.1.0.0\n"
            gate.touch()
            assert cluster.wait_run("mobile") == "SUCCEEDED"
            assert c.task("mobile.1.0.0").state.value == "LOST"  # its end stays as recorded
    finally:
        cluster.stop()
