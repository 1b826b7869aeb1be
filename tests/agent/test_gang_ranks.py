"""A gang's rank on its agent: its environment and hostfile, what a waiting rank runs, and the
remote shell mpirun calls (the real script, its FIFOs and the agent's relay, with the master
played by the test)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from pydantic import BaseModel

from corral.agent import gangs
from corral.agent.cgroups import Cgroups
from corral.agent.executors.process import ProcessExecutor
from corral.agent.rsh import RshRelays
from corral.spec.execs import ExecCancel, ExecExit, ExecOutput, RshOpen
from corral.spec.protocol import GangMember, TaskLaunch
from corral.spec.states import TaskState
from tests.agent.helpers import RecordingAgent

DEADLINE = 15.0
HOSTS = ["node-a", "node-b"]


def rank(r: int, every_rank: bool = False) -> TaskLaunch:
    member = GangMember(
        gang="mpi.1", rank=r, nodes=2, tasks_per_node=2, every_rank=every_rank, hosts=HOSTS
    )
    return TaskLaunch(
        task_id=f"mpi.1.{r}.0",
        job="mpi",
        shell="mpirun ./a.out",
        cpus=1,
        mem=100,
        env={"OMPI_MCA_plm_rsh_no_tree_spawn": "0"},
        gang=member,
    )


def test_every_rank_knows_its_place_the_hostfile_and_open_mpi_s_settings() -> None:
    launch = gangs.rank_launch(rank(3), "/sb")
    env = launch.env
    assert {k: env[k] for k in env if k.startswith("CORRAL_")} == {
        "CORRAL_GANG": "mpi.1",
        "CORRAL_RANK": "3",
        "CORRAL_LOCAL_RANK": "1",
        "CORRAL_NODE_RANK": "1",
        "CORRAL_NODES": "2",
        "CORRAL_TASKS_PER_NODE": "2",
        "CORRAL_GANG_SIZE": "4",
        "CORRAL_HOSTS": "node-a,node-b",
        "CORRAL_HOSTFILE": "/sb/.corral/hostfile",
    }
    assert env["OMPI_MCA_plm_rsh_agent"] == "/sb/.corral/rsh"
    assert env["OMPI_MCA_orte_default_hostfile"] == "/sb/.corral/hostfile"
    assert env["OMPI_MCA_plm_rsh_no_tree_spawn"] == "0"  # the task's own setting wins
    member = launch.gang
    assert member is not None
    assert gangs.hostfile(member) == "node-a slots=2\nnode-b slots=2\n"


def test_rank_0_runs_the_command_the_others_wait_and_a_node_s_first_rank_holds_its_limits() -> None:
    zero, one, two = (gangs.rank_launch(rank(r), "/sb") for r in (0, 1, 2))
    assert (zero.shell, zero.cpus, zero.mem) == ("mpirun ./a.out", 2, 200)
    assert (one.shell, one.command, one.cpus, one.mem) == (gangs.WAIT, None, 1, 100)
    assert (two.shell, two.cpus, two.mem) == (gangs.WAIT, 2, 200)
    every = gangs.rank_launch(rank(1, every_rank=True), "/sb")
    assert (every.shell, every.cpus) == ("mpirun ./a.out", 1)
    plain = TaskLaunch(task_id="x", job="x", shell="true", cpus=1, mem=1)
    assert gangs.rank_launch(plain, "/sb") is plain


class PlayedMaster:
    """Answers the relay's remote shells by running the command here, as the gang's task on
    that host would; records what it was sent."""

    def __init__(self) -> None:
        self.sent: list[BaseModel] = []
        self.relays: RshRelays | None = None
        self.hold = False  # leave the remote shells unanswered
        self.opened = asyncio.Event()

    async def send(self, message: BaseModel) -> None:
        self.sent.append(message)
        if isinstance(message, RshOpen):
            self.opened.set()
        if isinstance(message, RshOpen) and not self.hold:
            asyncio.get_running_loop().create_task(self._answer(message))

    async def _answer(self, msg: RshOpen) -> None:
        assert self.relays is not None
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            msg.command,
            env={**os.environ, "ON": msg.host},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        await self.relays.output(ExecOutput(exec_id=msg.exec_id, stream=1, data=out))
        await self.relays.output(ExecOutput(exec_id=msg.exec_id, stream=2, data=err))
        await self.relays.exited(ExecExit(exec_id=msg.exec_id, exit_code=proc.returncode))


async def rsh(directory: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(directory / gangs.RSH),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def test_the_remote_shell_runs_the_command_on_the_host_as_ssh_would(tmp_path: Path) -> None:
    async def scenario() -> None:
        master = PlayedMaster()
        relays = master.relays = RshRelays(master.send)
        member = rank(0).gang
        assert member is not None
        directory = gangs.prepare(member, tmp_path / "sandbox")
        assert (directory / gangs.HOSTFILE).read_text() == "node-a slots=2\nnode-b slots=2\n"
        relays.watch("mpi.1.0.0", directory)
        # As Open MPI calls it: the host, then the command in words, joined as ssh joins them.
        proc = await rsh(
            directory, "node-b", "echo", "on", "$ON;", "echo", "oops", ">&2;", "exit", "5"
        )
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
        assert (out, err, proc.returncode) == (b"on node-b\n", b"oops\n", 5)
        opened = [m for m in master.sent if isinstance(m, RshOpen)]
        assert [(m.task_id, m.host) for m in opened] == [("mpi.1.0.0", "node-b")]
        assert sorted(p.name for p in directory.iterdir()) == ["hostfile", "requests", "rsh"]
        await relays.unwatch("mpi.1.0.0")

    asyncio.run(scenario())


def unanswered_relays(tmp_path: Path) -> tuple[PlayedMaster, RshRelays, Path]:
    """Rank 0's relays watching its gang directory, with a master that answers no remote shell
    (on the running loop)."""
    master = PlayedMaster()
    master.hold = True
    relays = master.relays = RshRelays(master.send)
    member = rank(0).gang
    assert member is not None
    directory = gangs.prepare(member, tmp_path / "sandbox")
    relays.watch("mpi.1.0.0", directory)
    return master, relays, directory


def test_a_remote_shell_of_a_task_that_ends_ends_with_255_and_is_cancelled(tmp_path: Path) -> None:
    async def scenario() -> None:
        master, relays, directory = unanswered_relays(tmp_path)
        proc = await rsh(directory, "node-b", "sleep", "60")
        await asyncio.wait_for(master.opened.wait(), DEADLINE)
        await relays.unwatch("mpi.1.0.0")
        _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
        assert proc.returncode == 255 and b"the task ended" in err
        opened = next(m for m in master.sent if isinstance(m, RshOpen))
        assert ExecCancel(exec_id=opened.exec_id) in master.sent

    asyncio.run(scenario())


def test_an_answer_to_a_remote_shell_that_went_away_is_dropped(tmp_path: Path) -> None:
    """mpirun may kill a remote shell before its answer comes: what the answer would have
    written goes nowhere, on the daemons' loop (uvloop raises writing to a closed transport)
    as on asyncio's own (``conftest.py`` runs it on both)."""

    async def scenario() -> None:
        master, relays, directory = unanswered_relays(tmp_path)
        proc = await asyncio.create_subprocess_exec(
            str(directory / gangs.RSH), "node-b", "sleep", "60", start_new_session=True
        )
        await asyncio.wait_for(master.opened.wait(), DEADLINE)
        os.killpg(proc.pid, signal.SIGKILL)  # the script and the readers of its FIFOs
        await asyncio.wait_for(proc.wait(), DEADLINE)
        opened = next(m for m in master.sent if isinstance(m, RshOpen))
        # Twice on each stream: the first write finds the reader gone and closes the transport.
        for stream in (1, 1, 2, 2):
            await relays.output(ExecOutput(exec_id=opened.exec_id, stream=stream, data=b"late"))
        await relays.exited(ExecExit(exec_id=opened.exec_id, exit_code=0))
        await relays.unwatch("mpi.1.0.0")
        assert not [m for m in master.sent if isinstance(m, ExecCancel)]  # it had ended

    asyncio.run(scenario())


def test_a_waiting_rank_asked_to_finish_ends_finished_and_one_killed_ends_killed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        executor = ProcessExecutor(cgroups=Cgroups.disabled("not needed here"))
        agent = RecordingAgent(tmp_path / "agent", {"process": executor})
        done, stopped = rank(1), rank(3)
        for r in (done, stopped):
            await agent.launch(r)
            await agent.update(r.task_id, lambda u: u.state is TaskState.RUNNING, "RUNNING")
        assert (agent.tasks_dir / done.task_id / "sandbox" / ".corral" / "hostfile").exists()
        await agent.kill(done.task_id, 5.0, "the gang's rank 0 finished", finish=True)
        await agent.kill(stopped.task_id, 5.0, "the gang stopped")
        finished, killed = await agent.ended(done.task_id), await agent.ended(stopped.task_id)
        assert (finished.state, finished.reason) == (
            TaskState.FINISHED,
            "the gang's rank 0 finished",
        )
        assert killed.state is TaskState.KILLED and killed.reason.startswith("the gang stopped")
        agent.journal.close()

    asyncio.run(scenario())
