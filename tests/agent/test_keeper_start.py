"""An agent has its task keeper running before its first launch: a keeper takes 30-50 ms to
start (a Python process), which the first task on every new agent used to wait for."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from corral.agent.executors.process import ProcessExecutor
from corral.agent.keeper_client import keeper_name
from corral.agent.ports import PortPool
from tests.agent.helpers import DEADLINE, RecordingAgent, free_range


def _keeper_listens(tasks_dir: Path) -> bool:
    """Whether a keeper of ``tasks_dir`` takes connections now."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect("\0" + keeper_name(tasks_dir))
        except OSError:
            return False
    return True


class OpenedExecutor(ProcessExecutor):
    """The process driver, saying when the agent has opened it."""

    def __init__(self) -> None:
        super().__init__(port_pool=PortPool(*free_range(2)))
        self.opened = asyncio.Event()

    async def open(self, tasks_dir: Path) -> None:
        await super().open(tasks_dir)
        self.opened.set()


def test_a_starting_agent_starts_its_keeper_before_any_launch(tmp_path: Path) -> None:
    async def scenario() -> bool:
        executor = OpenedExecutor()
        agent = RecordingAgent(tmp_path, {"process": executor})
        assert not _keeper_listens(agent.tasks_dir)
        running = asyncio.create_task(agent.run())  # no master answers: it goes on dialing
        try:
            async with asyncio.timeout(DEADLINE):
                await executor.opened.wait()
            return _keeper_listens(agent.tasks_dir)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await agent.stop(timeout=DEADLINE)

    assert asyncio.run(scenario())
