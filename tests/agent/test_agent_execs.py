"""Execs as the agent handles them from the master: one asked while the task is still starting
runs once it has started; one in a task that does not run here, or ends, ends with the reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from corral.agent.cgroups import Cgroups
from corral.agent.executors.process import ProcessExecutor
from corral.spec.execs import ExecExit, ExecOpen, ExecOutput
from corral.spec.states import TaskState
from tests.agent.helpers import DEADLINE, RecordingAgent, launch


class CapturingAgent(RecordingAgent):
    """Keeps what it would send the master about execs."""

    def __init__(self, data_dir: Path) -> None:
        executor = ProcessExecutor(cgroups=Cgroups.disabled("not needed here"))
        super().__init__(data_dir, {"process": executor})
        self.sent: list[BaseModel] = []
        self.said = asyncio.Event()

    async def _send_message(self, message: BaseModel) -> None:
        self.sent.append(message)
        self.said.set()

    async def first(self, kind: type[ExecOutput | ExecExit], exec_id: int) -> BaseModel:
        """The first message of ``kind`` about the exec, waiting for it at most DEADLINE."""
        async with asyncio.timeout(DEADLINE):
            while True:
                found = [m for m in self.sent if isinstance(m, kind) and m.exec_id == exec_id]
                if found:
                    return found[0]
                self.said.clear()
                await self.said.wait()

    async def exit_of(self, exec_id: int) -> ExecExit:
        ended = await self.first(ExecExit, exec_id)
        assert isinstance(ended, ExecExit)
        return ended


def test_an_exec_asked_while_the_task_starts_runs_once_it_has_started(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = CapturingAgent(tmp_path / "agent")
        task = launch(shell=f"while [ ! -e {tmp_path / 'go'} ]; do sleep 0.05; done")
        await agent.launch(task)  # starting goes on in the background
        await agent._handle(ExecOpen(exec_id=1, task_id=task.task_id, command=["echo", "hi"]))
        ended = await agent.exit_of(1)
        assert (ended.exit_code, ended.error) == (0, None)
        out = b"".join(m.data for m in agent.sent if isinstance(m, ExecOutput))
        assert out == b"hi\n"
        (tmp_path / "go").touch()
        assert (await agent.ended(task.task_id)).state is TaskState.FINISHED
        await agent._handle(ExecOpen(exec_id=2, task_id=task.task_id, command=["true"]))
        gone = await agent.exit_of(2)
        assert gone.exit_code is None
        assert gone.error == f"task {task.task_id} is not running on this agent"
        agent.journal.close()

    asyncio.run(scenario())


def test_an_exec_ends_with_its_task(tmp_path: Path) -> None:
    async def scenario() -> None:
        agent = CapturingAgent(tmp_path / "agent")
        task = launch(shell="sleep 60")
        await agent.launch(task)
        await agent.update(task.task_id, lambda u: u.state is TaskState.RUNNING, "RUNNING")
        command = ["sh", "-c", "echo started; exec sleep 60"]
        await agent._handle(ExecOpen(exec_id=1, task_id=task.task_id, command=command))
        await agent.first(ExecOutput, 1)
        await agent.kill(task.task_id, 0.0, "stop")
        ended = await agent.exit_of(1)
        assert ended.exit_code == 128 + 9, ended
        agent.journal.close()

    asyncio.run(scenario())
