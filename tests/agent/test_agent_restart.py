"""What a task leaves on the agent's disk, and what a restarted agent makes of it, with real
processes: one record per task beside its sandbox, and the files of agents before the record."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from corral.agent import task_record
from corral.agent.executors.process import ProcessExecutor
from corral.agent.ports import PortPool
from corral.spec.states import TaskState
from tests.agent.helpers import RecordingAgent, free_range, launch


@asynccontextmanager
async def agent_in(data_dir: Path) -> AsyncIterator[RecordingAgent]:
    """An agent offering the process driver, stopped afterwards."""
    agent = RecordingAgent(
        data_dir, {"process": ProcessExecutor(port_pool=PortPool(*free_range(2)))}
    )
    try:
        yield agent
    finally:
        await agent.stop(timeout=10)


def test_a_task_leaves_its_sandbox_and_one_record_holding_its_end(tmp_path: Path) -> None:
    task = launch(shell="echo hi; exit 2")

    async def scenario() -> None:
        async with agent_in(tmp_path) as agent:
            await agent.launch(task)
            assert (await agent.ended(task.task_id)).exit_code == 2

    asyncio.run(scenario())
    root = tmp_path / "tasks" / task.task_id
    left = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
    assert left == ["sandbox", "sandbox/stderr", "sandbox/stdout", "task.jsonl"]
    assert (root / "sandbox" / "stdout").read_text() == "hi\n"
    recorded = task_record.read(root)
    assert recorded.ended and recorded.end == {
        "state": "FAILED",
        "reason": "exited with status 2",
        "exit_code": 2,
    }


def older_agents_task(data_dir: Path, exit_code: int) -> str:
    """A task an agent before the record started and did not see end: its facts in ``meta/``,
    the status its wrapper wrote, its pid now another process's (this one's). Answers its id."""
    task = launch(shell=f"exit {exit_code}")
    meta = data_dir / "tasks" / task.task_id / "meta"
    meta.mkdir(parents=True)
    (meta.parent / "sandbox").mkdir()
    (meta / "launch.json").write_text(task.model_dump_json())
    (meta / "pid").write_text(f"{os.getpid()} 1\n")
    (meta / "exit_code").write_text(f"{exit_code}\n")
    return task.task_id


def test_a_restarted_agent_reports_the_end_of_an_older_agents_task_once(tmp_path: Path) -> None:
    task_id = older_agents_task(tmp_path, 3)

    async def recover() -> list[tuple[TaskState, int | None]]:
        async with agent_in(tmp_path) as agent:
            await agent.recover()
            return [(u.state, u.exit_code) for u in agent.of(task_id)]

    assert asyncio.run(recover()) == [(TaskState.FAILED, 3)]
    assert asyncio.run(recover()) == []  # its end is recorded now: not reported again
    assert task_record.read(tmp_path / "tasks" / task_id).ended


def test_a_task_whose_recorded_launch_is_unreadable_is_reported_lost_on_restart(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tasks" / "broken.1.0.0"
    (root / "sandbox").mkdir(parents=True)
    task_record.append(root, launch={"task_id": "broken.1.0.0"})  # no job, no command

    async def recover() -> list[tuple[TaskState, str]]:
        async with agent_in(tmp_path) as agent:
            await agent.recover()
            return [(u.state, u.reason) for u in agent.of("broken.1.0.0")]

    assert asyncio.run(recover()) == [(TaskState.LOST, "its launch record is unreadable")]
    assert asyncio.run(recover()) == []
