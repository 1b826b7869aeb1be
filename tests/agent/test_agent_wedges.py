"""An agent never leaves a task half-started or a launch unanswered: any failure to start ends the
task FAILED with its reason, a launch of a task that ended here is answered with that end, and a
task that floods its stdout is stopped before it fills the disk."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from corral.agent import task_record
from corral.agent.executors.base import Executor
from corral.agent.executors.process import ProcessExecutor
from corral.agent.ports import PortPool
from corral.spec.states import TaskState
from tests.agent.helpers import RecordingAgent, free_range, launch


@asynccontextmanager
async def agent_in(data_dir: Path, max_output: int | None = None) -> AsyncIterator[RecordingAgent]:
    agent = RecordingAgent(
        data_dir, {"process": ProcessExecutor(port_pool=PortPool(*free_range(2)))}
    )
    if max_output is not None:
        agent.config.max_output = max_output
    try:
        yield agent
    finally:
        await agent.stop(timeout=10)


def test_a_nul_byte_in_the_command_ends_the_task_failed_with_the_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_in(tmp_path) as agent:
            task = launch(command=["echo", "a\x00b"])
            await agent.launch(task)
            end = await agent.ended(task.task_id)
            assert end.state is TaskState.FAILED
            assert end.reason.startswith("could not start: ValueError")
            assert task.task_id not in agent.tasks  # nothing left to kill, nothing held
            await agent.kill(task.task_id, 0, "too late")

    asyncio.run(scenario())


def test_a_nul_byte_in_the_environment_ends_the_task_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_in(tmp_path) as agent:
            task = launch(shell="true", env={"A": "x\x00y"})
            await agent.launch(task)
            assert (await agent.ended(task.task_id)).state is TaskState.FAILED

    asyncio.run(scenario())


def test_a_launch_of_a_task_that_ended_here_reports_that_end_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_in(tmp_path) as agent:
            task = launch(shell="echo once >> ../../../count; exit 3")
            await agent.launch(task)
            first = await agent.ended(task.task_id)
            assert (first.state, first.exit_code) == (TaskState.FAILED, 3)
            await agent.launch(task)  # the master lost the report and asks again
            await agent.launch(task)  # and again
            ends = [u for u in agent.of(task.task_id) if u.state.terminal]
            assert len(ends) == 3
            assert {(u.state, u.exit_code) for u in ends} == {(TaskState.FAILED, 3)}
            assert ends[1].reason == ends[2].reason == f"ended here before: {first.reason}"
            assert (tmp_path / "count").read_text() == "once\n"  # it did not run twice

    asyncio.run(scenario())


def test_a_task_whose_end_was_never_recorded_is_reported_lost_on_a_new_launch(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with agent_in(tmp_path) as agent:
            task = launch(shell="true")
            meta = tmp_path / "tasks" / task.task_id / "meta"
            meta.mkdir(parents=True)
            (meta / "done").write_text("")  # an agent of an older version touched it empty
            await agent.launch(task)
            end = await agent.ended(task.task_id)
            assert end.state is TaskState.LOST and "its end is unknown" in end.reason

    asyncio.run(scenario())


def test_a_task_writing_more_than_the_output_limit_is_stopped_and_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_in(tmp_path, max_output=1024 * 1024) as agent:
            police = asyncio.create_task(agent._police_output(every=0.05))
            try:
                task = launch(shell="yes corral", kill_grace=1)
                await agent.launch(task)
                end = await agent.ended(task.task_id)
            finally:
                police.cancel()
            assert end.state is TaskState.FAILED
            assert end.reason.startswith("stdout and stderr exceeded the agent's limit of 1 MiB")
            recorded = task_record.read(tmp_path / "tasks" / task.task_id).end
            assert isinstance(recorded, dict) and recorded["state"] == "FAILED"

    asyncio.run(scenario())


class FrozenClock:
    """The agent's clocks, stopped at one instant."""

    def now(self) -> float:
        return 1_800_000_000.5

    def monotonic(self) -> float:
        return 42.0


def test_the_agent_stamps_status_updates_with_its_injected_clock(tmp_path: Path) -> None:
    async def scenario() -> None:
        executors: dict[str, Executor] = {
            "process": ProcessExecutor(port_pool=PortPool(*free_range(2)))
        }
        agent = RecordingAgent(tmp_path, executors, FrozenClock())
        try:
            task = launch(shell="true")
            await agent.launch(task)
            await agent.ended(task.task_id)
            assert {u.time for u in agent.of(task.task_id)} == {1_800_000_000.5}
        finally:
            await agent.stop(timeout=10)

    asyncio.run(scenario())
