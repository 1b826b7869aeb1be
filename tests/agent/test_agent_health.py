"""Health checks run by the agent on real process tasks: reports, kills, grace, restarts.

The agent here has no master: the tests read the status updates it journals as they are made.
Checks run every 0.2 s so that a scenario takes about a second.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from corral.agent import task_record
from corral.agent.executors.process import ProcessExecutor, ProcessHandle
from corral.agent.ports import PortPool
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState
from tests.agent.helpers import RecordingAgent, free_range, launch

T = TypeVar("T")
# Checks come fast; each may take its time (on a loaded machine a spawn or an answer can take
# over 0.2 s, and a check that timed out says so instead of what the tests expect).
FAST = {"delay": 0, "interval": 0.2, "timeout": 5}

# Answers 200 while a file "healthy" is in its working directory (the sandbox), else 500.
SWITCHED = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if os.path.exists("healthy") else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT0"])), Handler).serve_forever()
"""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(coro)


@asynccontextmanager
async def agent_with_processes(data_dir: Path) -> AsyncIterator[RecordingAgent]:
    """An agent offering the process driver with a pool of its own; stopped afterwards."""
    executor = ProcessExecutor(port_pool=PortPool(*free_range(4)))
    agent = RecordingAgent(data_dir, {"process": executor})
    try:
        yield agent
    finally:
        await agent.stop(timeout=10)


def checked(shell: str, checks: list[dict[str, Any]], **fields: Any) -> TaskLaunch:
    """A process task running ``shell`` with the given health checks (fast unless they say)."""
    return launch(shell=shell, health_checks=[{**FAST, **c} for c in checks], **fields)


def python_server(script: str = "") -> str:
    """A shell line running a Python HTTP server on ``$PORT0`` (the stdlib one by default)."""
    if not script:
        return f'exec {sys.executable} -m http.server "$PORT0" --bind 127.0.0.1'
    return f"exec {sys.executable} -c '{script}'"


def no_checks_left() -> bool:
    """Whether no health check runs any more (in this test's event loop)."""
    return not [t for t in asyncio.all_tasks() if t.get_name().startswith("health check")]


async def abandon(agent: RecordingAgent) -> None:
    """Leave the agent's tasks running unwatched, as an agent process that dies does."""
    for rt in agent.tasks.values():
        if rt.health is not None:
            await rt.health.stop()
        if rt.watcher is not None:
            rt.watcher.cancel()
            await asyncio.gather(rt.watcher, return_exceptions=True)
        assert isinstance(rt.handle, ProcessHandle)
        rt.handle.detach()
    agent.tasks.clear()


def test_a_task_serving_http_on_port0_is_reported_healthy(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            # The grace period covers the moments before the server listens.
            task = checked(python_server(), [{"path": "/", "grace_period": 10}], ports=[{}])
            await agent.launch(task)
            report = await agent.health(task.task_id)
            port = agent.executors["process"].ports(task.task_id)[0]
            assert (report.state, report.healthy) == (TaskState.RUNNING, True)
            assert report.reason == f"HTTP 200 from :{port}/"
            await agent.kill(task.task_id, 0, "test over")
            assert (await agent.ended(task.task_id)).state is TaskState.KILLED
            assert agent.health_reports(task.task_id) == [(True, report.reason)]
            assert no_checks_left()

    run(scenario())


def sandbox_of(agent: RecordingAgent, task: TaskLaunch) -> Path:
    """The task's sandbox on ``agent``, made already, so a test can put files in it first."""
    path = agent.tasks_dir / task.task_id / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_task_failing_http_checks_is_reported_unhealthy_then_killed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            spec = {"path": "/health", "grace_period": 10, "max_consecutive_failures": 3}
            task = checked(python_server(SWITCHED), [spec], ports=[{}], kill_grace=5)
            switch = sandbox_of(agent, task) / "healthy"
            switch.touch()
            await agent.launch(task)
            assert (await agent.health(task.task_id)).healthy is True
            switch.unlink()
            ended = await agent.ended(task.task_id)
            assert agent.executors["process"].ports(task.task_id) == []  # given back
            running = agent.of(task.task_id)[1]
            assert running.state is TaskState.RUNNING and running.ports is not None
            served = f":{running.ports[0]}/health"
            assert agent.health_reports(task.task_id) == [
                (True, f"HTTP 200 from {served}"),
                (False, f"HTTP 500 from {served}"),
            ]
            # Each failure reaches the master with the check's record.
            failing = [
                u.checks[0]
                for u in agent.of(task.task_id)
                if u.checks and u.checks[0].alive is False
            ]
            assert [c.consecutive_failures for c in failing] == [1, 2, 3]
            assert failing[-1].last_failure_cause == f"HTTP 500 from {served}"
            assert ended.state is TaskState.KILLED
            reason = f"failed 3 health checks in a row: HTTP 500 from {served}"
            assert ended.reason == f"{reason} (killed (SIGTERM))"
            assert no_checks_left()

    run(scenario())


def test_a_tcp_check_is_healthy_while_the_task_listens(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            task = checked(python_server(), [{"protocol": "TCP", "grace_period": 10}], ports=[{}])
            await agent.launch(task)
            report = await agent.health(task.task_id)
            port = agent.executors["process"].ports(task.task_id)[0]
            assert (report.healthy, report.reason) == (True, f"port {port} accepts connections")
            await agent.kill(task.task_id, 0, "test over")
            await agent.ended(task.task_id)

    run(scenario())


def test_a_command_check_runs_in_the_sandbox_with_the_tasks_environment(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            command = '[ "$GREETING" = hi ] && [ -f here ] && [ -n "$PORT0" ]'
            spec = {"protocol": "COMMAND", "command": command, "grace_period": 10}
            task = checked("touch here; exec sleep 30", [spec], env={"GREETING": "hi"}, ports=[{}])
            await agent.launch(task)
            report = await agent.health(task.task_id)
            assert (report.healthy, report.reason) == (True, "command exited with status 0")
            await agent.kill(task.task_id, 0, "test over")
            await agent.ended(task.task_id)

    run(scenario())


def test_a_command_check_exiting_1_is_unhealthy_and_never_kills_with_max_0(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            spec = {
                "protocol": "COMMAND",
                "command": "echo not ready; exit 1",
                "grace_period": 0,
                "max_consecutive_failures": 0,
            }
            task = checked("exec sleep 30", [spec])
            await agent.launch(task)
            report = await agent.health(task.task_id)
            assert (report.healthy, report.reason) == (
                False,
                "command exited with status 1: not ready",
            )
            assert task.task_id in agent.tasks
            await agent.kill(task.task_id, 0, "test over")
            ended = await agent.ended(task.task_id)
            assert ended.reason.startswith("test over (killed")
            assert agent.health_reports(task.task_id) == [(False, report.reason)]

    run(scenario())


def test_failures_within_the_grace_period_are_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            # Without the grace period the first failed check would kill it.
            spec = {
                "protocol": "COMMAND",
                "command": "test -f ready",
                "grace_period": 10,
                "max_consecutive_failures": 1,
            }
            task = checked("sleep 0.6; touch ready; exec sleep 30", [spec])
            await agent.launch(task)
            report = await agent.health(task.task_id)
            assert report.healthy is True
            assert agent.health_reports(task.task_id) == [(True, "command exited with status 0")]
            await agent.kill(task.task_id, 0, "test over")
            await agent.ended(task.task_id)

    run(scenario())


def test_checks_stop_when_the_task_ends_on_its_own(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agent_with_processes(tmp_path) as agent:
            spec = {"protocol": "COMMAND", "command": "true", "grace_period": 10}
            task = checked("sleep 0.5", [spec])
            await agent.launch(task)
            assert (await agent.ended(task.task_id)).state is TaskState.FINISHED
            assert no_checks_left()

    run(scenario())


def test_a_restarted_agent_checks_the_task_it_recovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        spec = {"protocol": "COMMAND", "command": "test -f ok", "grace_period": 0}
        task = checked("exec sleep 30", [spec], ports=[{}])
        async with agent_with_processes(tmp_path) as first:
            await first.launch(task)
            assert (await first.health(task.task_id)).healthy is False
            await abandon(first)
        (tmp_path / "tasks" / task.task_id / "sandbox" / "ok").touch()
        async with agent_with_processes(tmp_path) as second:
            await second.recover()
            report = await second.health(task.task_id)
            assert (report.healthy, report.reason) == (True, "command exited with status 0")
            await second.kill(task.task_id, 0, "test over")
            assert (await second.ended(task.task_id)).state is TaskState.KILLED

    run(scenario())


def test_a_restarted_agent_counts_the_grace_period_from_the_tasks_first_start(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        spec = {
            "protocol": "COMMAND",
            "command": "false",
            "grace_period": 30,
            "max_consecutive_failures": 1,
        }
        task = checked("exec sleep 30", [spec])
        async with agent_with_processes(tmp_path) as first:
            await first.launch(task)
            await first.update(task.task_id, lambda u: u.state is TaskState.RUNNING, "RUNNING")
            await abandon(first)
        # It has been RUNNING for a minute, as the record says: its grace period is over.
        task_record.append(tmp_path / "tasks" / task.task_id, running_since=time.time() - 60)
        async with agent_with_processes(tmp_path) as second:
            await second.recover()
            end = await second.ended(task.task_id)
            assert end.state is TaskState.KILLED and end.reason.startswith("failed 1 health check")

    run(scenario())
