"""Gang jobs on a real cluster: an unmodified mpirun across three agents, a gang that waits whole
for room, a gang stopped and retried whole, and ``corral exec`` into a running task."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.agent import task_record
from corral.client import Client
from corral.spec.jobs import JobSpec
from corral.spec.views import EventView, TaskView
from tests.support.cluster import CORRAL, Cluster, corral_env, running_cluster, shell_wait_for
from tests.support.mpi import LINE, MPI_TEST_ENV, compile_mpi_program

pytestmark = pytest.mark.integration


@pytest.fixture
def mpi_program(tmp_path: Path) -> Path:
    """The C MPI program, compiled with mpicc."""
    return compile_mpi_program(tmp_path)


def submit(c: Cluster, **spec: Any) -> None:
    with c.client() as client:
        client.create_job(JobSpec.model_validate(spec))


def tasks_of(c: Cluster, job: str, run: int = 1) -> list[TaskView]:
    with c.client() as client:
        return sorted(client.tasks(job=job, run=run), key=lambda t: (t.attempt, t.slot))


def stdout_of(client: Client, task_id: str) -> str:
    return client.logs(task_id, "stdout", 0, 1 << 20).data


def corral_exec(
    c: Cluster, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``corral exec ARGS...`` against the cluster, as a user runs it."""
    return subprocess.run(
        [*CORRAL, "exec", *args],
        env=corral_env(CORRAL_URL=c.url, CORRAL_TOKEN=c.token),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def submit_ring(c: Cluster, tmp_path: Path) -> list[TaskView]:
    """A gang of 3 nodes that waits for nothing, retried once at once; its ranks once RUNNING."""
    task = {"shell": shell_wait_for(tmp_path / "never"), "cpus": 1}
    submit(c, name="ring", nodes=3, retries=1, retry_backoff=0, task=task)
    c.wait_count("ring", "RUNNING", 3)
    return attempt(c, "ring", 0)


# The test's three nodes are one machine: MPI's own TCP stays on its loopback, whatever other
# interfaces the machine has (Docker's bridges, a test's veth).
ON_ONE_MACHINE = {"OMPI_MCA_oob_tcp_if_include": "lo", "OMPI_MCA_btl_tcp_if_include": "lo"}
SESSION_BASE = re.compile(r"/tmp/corral-mpi-[0-9a-f]{16}(?=/)")  # gangs.session_base


@pytest.mark.timeout(240)  # compiling, three agents, and a run given 120 s
def test_an_unmodified_mpirun_runs_a_gang_of_3_nodes_of_2_ranks_each_under_its_agent(
    cluster: Cluster, mpi_program: Path
) -> None:
    c = cluster
    c.add_agents(["node-a", "node-b", "node-c"], cpus=2)
    submit(
        c,
        name="allreduce",
        nodes=3,
        tasks_per_node=2,
        task={
            "command": ["mpirun", "--mca", "btl", "self,tcp", str(mpi_program)],
            "env": {**MPI_TEST_ENV, **ON_ONE_MACHINE},
            "cpus": 1,
            "mem": 256,
        },
    )
    try:
        outcome = c.wait_run("allreduce", timeout=120)
    except AssertionError:
        outcome = "did not end in 120 s"
    ranks = tasks_of(c, "allreduce")
    if outcome != "SUCCEEDED":
        with c.client() as client:
            said = [
                client.logs(ranks[0].id, name, 0, 1 << 16).data for name in ("stderr", "stdout")
            ]
        states = [(t.id, t.state.value, t.reason) for t in ranks]
        pytest.fail(
            f"the gang {outcome}: {states}; rank 0's stderr:\n{said[0]}\nstdout:\n{said[1]}"
        )
    assert [t.state.value for t in ranks] == ["FINISHED"] * 6
    host_of = {t.slot: t.hostname or "" for t in ranks}
    assert sorted({host_of[0], host_of[2], host_of[4]}) == ["node-a", "node-b", "node-c"]
    assert all(host_of[r] == host_of[r - r % 2] for r in range(6))  # a node's ranks together
    agent_pid = {name: proc.popen.pid for name, proc in c.agents.items() if proc.popen}
    with c.client() as client:
        out = stdout_of(client, "allreduce.1.0.0")
    lines = [m.groupdict() for m in LINE.finditer(out)]
    assert sorted(int(line["rank"]) for line in lines) == list(range(6)), out
    for line in lines:
        rank = int(line["rank"])
        assert (line["size"], line["sum"]) == ("6", "21"), line
        # mpirun maps ranks by slot: MPI rank r runs on the node of Corral rank r, in the task
        # of that node's first rank, a descendant of the agent that node was placed on.
        leader = f"allreduce.1.{rank - rank % 2}.0"
        assert line["task"] == leader, line
        ancestors = {int(pid) for pid in line["chain"].split(",") if pid}
        assert agent_pid[host_of[rank]] in ancestors, (line, agent_pid)
        others = set(agent_pid.values()) - {agent_pid[host_of[rank]]}
        assert not ancestors & others, (line, agent_pid)


@pytest.mark.timeout(240)
def test_each_node_of_a_gang_keeps_open_mpi_s_session_files_apart_and_they_go_with_it(
    cluster: Cluster,
) -> None:
    # Three nodes on one machine, as above: with the default /tmp/ompi.HOST.UID, the daemons
    # shared one session directory, each clearing it as it started, and one failed now and then.
    c = cluster
    c.add_agents(["node-a", "node-b", "node-c"], cpus=1)
    report = 'echo "$OMPI_COMM_WORLD_RANK $OMPI_FILE_LOCATION"'  # a process's session files
    submit(
        c,
        name="sessions",
        nodes=3,
        task={
            "command": ["mpirun", "sh", "-c", report],
            "env": {**MPI_TEST_ENV, **ON_ONE_MACHINE},
            "cpus": 1,
            "mem": 64,
        },
    )
    assert c.wait_run("sessions", timeout=120) == "SUCCEEDED"
    with c.client() as client:
        out = stdout_of(client, "sessions.1.0.0")
    where = dict(line.split(" ", 1) for line in out.splitlines())
    assert sorted(where) == ["0", "1", "2"], out
    # MPI rank r runs on node r, under the daemon started in the task of that node's rank:
    # three nodes, three session directories of Corral's.
    found = [SESSION_BASE.match(location) for location in where.values()]
    bases = {match[0] for match in found if match}
    assert len(bases) == 3, out
    assert not [base for base in bases if Path(base).exists()]  # removed as each rank ended


def test_corral_exec_runs_in_a_running_task_and_returns_its_output_and_exit_code(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    c.add_agent("node-a", cpus=2)
    release = tmp_path / "release"
    submit(
        c,
        name="held",
        task={"shell": shell_wait_for(release), "cpus": 0.5, "env": {"GREETING": "hello"}},
    )
    c.wait_task("held.1.0.0", "RUNNING")
    script = 'echo "$GREETING from $CORRAL_TASK_ID in $(pwd)"; echo oops >&2; exit 7'
    done = corral_exec(c, "held.1.0.0", "--", "sh", "-c", script)
    assert done.returncode == 7, done
    sandbox = c.root / "agents" / "node-a" / "tasks" / "held.1.0.0" / "sandbox"
    assert done.stdout == f"hello from held.1.0.0 in {sandbox}\n"
    assert done.stderr == "oops\n"
    fed = corral_exec(c, "-i", "held.1.0.0", "--", "wc", "-c", stdin="twelve bytes")
    assert (fed.returncode, fed.stdout.strip()) == (0, "12"), fed
    missing = corral_exec(c, "nope.1.0.0", "--", "true")
    assert missing.returncode == 1 and "not found" in missing.stderr, missing
    release.touch()
    assert c.wait_run("held") == "SUCCEEDED"


def test_a_gang_of_4_on_room_for_3_waits_whole_then_starts_when_a_fourth_slot_frees(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    c.add_agents(["node-a", "node-b", "node-c", "node-d"], cpus=1)
    freed, done = tmp_path / "free", tmp_path / "done"
    submit(c, name="blocker", task={"shell": shell_wait_for(freed), "cpus": 1})
    c.wait_task("blocker.1.0.0", "RUNNING")
    submit(c, name="wide", nodes=4, task={"shell": shell_wait_for(done), "cpus": 1})
    waiting = "gang of 4 nodes: 3 fit (1 insufficient cpus)"

    def all_waiting() -> bool:
        ranks = tasks_of(c, "wide")
        return len(ranks) == 4 and all(t.waiting == waiting for t in ranks)

    c.wait_until(all_waiting, 30, f"the gang waiting with {waiting!r}")
    assert {t.state.value for t in tasks_of(c, "wide")} == {"PENDING"}
    assert not [e for e in c.events() if e.job == "wide" and e.state == "STAGING"]
    freed.touch()
    c.wait_count("wide", "RUNNING", 4, timeout=30)

    def placements() -> list[EventView] | None:
        found = [e for e in c.events() if e.job == "wide" and e.state == "STAGING"]
        return found if len(found) == 4 else None

    placed = c.wait_until(placements, 30, "the gang's 4 placements")
    blocker = [e.id for e in c.events() if e.task_id == "blocker.1.0.0" and e.state == "FINISHED"]
    assert blocker and min(e.id for e in placed) > blocker[0]
    assert len({e.agent_id for e in placed}) == 4  # a node per agent, the freed one included
    done.touch()
    with c.client() as client:
        client.kill_job("wide")


def wrapper_pid(c: Cluster, task: TaskView) -> int:
    """The pid of a process task's wrapper (its process group), from its agent's records."""
    pid = task_record.read(c.root / "agents" / (task.hostname or "") / "tasks" / task.id).pid
    assert pid is not None, f"no pid recorded for {task.id}"
    return pid[0]


def attempt(c: Cluster, job: str, n: int) -> list[TaskView]:
    return [t for t in tasks_of(c, job) if t.attempt == n]


def test_killing_one_rank_s_process_stops_the_gang_and_retries_it_whole(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    c.add_agents(["node-a", "node-b", "node-c"], cpus=1)
    victim = submit_ring(c, tmp_path)[1]  # a waiting rank: its placeholder's process
    os.killpg(wrapper_pid(c, victim), signal.SIGKILL)

    def retried() -> bool:
        return len(attempt(c, "ring", 1)) == 3 and all(
            t.state.value == "RUNNING" for t in attempt(c, "ring", 1)
        )

    c.wait_until(retried, 60, "the whole gang running again as attempt 1")
    first = {t.slot: t for t in attempt(c, "ring", 0)}
    assert first[1].state.value == "FAILED" and "SIGKILL" in first[1].reason
    for rank in (0, 2):
        assert first[rank].state.value == "KILLED", first[rank]
        assert first[rank].reason.startswith("gang ring.1 stopped: rank 1 FAILED"), first[rank]
    assert sorted(t.hostname or "" for t in attempt(c, "ring", 1)) == ["node-a", "node-b", "node-c"]
    with c.client() as client:
        assert client.run("ring", 1).state.value == "RUNNING"
        client.kill_job("ring")
    assert c.wait_run("ring") == "KILLED"


@pytest.fixture
def quick_loss(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster whose agents are LOST after 3 s of silence."""
    with running_cluster(Cluster(tmp_path, lost_after=3.0), request) as c:
        yield c


def test_kill_9_of_a_gang_s_agent_retries_the_gang_whole_after_the_loss_timeout(
    quick_loss: Cluster, tmp_path: Path
) -> None:
    c = quick_loss
    c.add_agents(["node-a", "node-b", "node-c", "node-d"], cpus=1)
    first = submit_ring(c, tmp_path)
    dead = first[2].hostname or ""
    orphans = [wrapper_pid(c, t) for t in first if t.hostname == dead]
    killed_at = time.monotonic()
    try:
        c.agents[dead].signal(signal.SIGKILL)

        def retried() -> bool:
            again = attempt(c, "ring", 1)
            return len(again) == 3 and all(t.state.value == "RUNNING" for t in again)

        c.wait_until(retried, 60, "the whole gang running again, without the dead agent")
        # Not before the loss timeout, counted from the agent's last heartbeat: up to one
        # heartbeat (1 s) before the kill (a run retried 2.999 s after it was seen once).
        assert time.monotonic() - killed_at >= 3.0 - 1.0
        lost = {t.slot: t for t in attempt(c, "ring", 0)}
        assert lost[2].state.value == "LOST"
        assert {lost[0].state.value, lost[1].state.value} == {"KILLED"}
        assert all(lost[r].reason.startswith("gang ring.1 stopped: rank 2 LOST") for r in (0, 1))
        hosts = sorted(t.hostname or "" for t in attempt(c, "ring", 1))
        assert dead not in hosts and len(set(hosts)) == 3
    finally:
        for pid in orphans:  # the dead agent's task outlives it: end it here
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    with c.client() as client:
        client.kill_job("ring")
