"""Commands run inside a process task (``corral exec``): its working directory, environment and
cgroups, input and output streamed, the exit status, and nothing left once the task ends."""

from __future__ import annotations

import asyncio
import os
import select
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.agent.cgroups import Cgroups
from corral.agent.executors.base import ExecError, ExecStream, TaskDirs
from corral.agent.executors.process import ProcessExecutor, ProcessHandle
from corral.spec.execs import TerminalSize
from corral.spec.protocol import TaskLaunch

DEADLINE = 15.0


def held(tmp_path: Path, **fields: object) -> TaskLaunch:
    """A task that runs until ``tmp_path/release`` exists."""
    return TaskLaunch.model_validate(
        {
            "task_id": f"test-{uuid.uuid4().hex[:12]}",
            "job": "tests",
            "cpus": 0.5,
            "mem": 128,
            "shell": f"while [ ! -e {tmp_path / 'release'} ]; do sleep 0.05; done",
            **fields,
        }
    )


@pytest.fixture(autouse=True)
def _released(tmp_path: Path) -> Iterator[None]:
    """A held task ends with its test, a failed one too (it waits for this file)."""
    yield
    (tmp_path / "release").touch()


async def start_held(tmp_path: Path) -> ProcessHandle:
    """A held task started without limits (these tests need none)."""
    executor = ProcessExecutor(cgroups=Cgroups.disabled("not needed here"))
    handle = await executor.start(held(tmp_path), TaskDirs(tmp_path / "task"))
    assert isinstance(handle, ProcessHandle)
    return handle


async def release(tmp_path: Path, handle: ProcessHandle) -> None:
    """Let the held task end, and wait for it."""
    (tmp_path / "release").touch()
    await asyncio.wait_for(handle.wait(), DEADLINE)


async def collect(stream: ExecStream) -> tuple[bytes, bytes, int | None]:
    """All of an exec's stdout and stderr, and its exit status."""
    out, err = b"", b""
    while (chunk := await asyncio.wait_for(stream.read(), DEADLINE)) is not None:
        if chunk[0] == 1:
            out += chunk[1]
        else:
            err += chunk[1]
    return out, err, await asyncio.wait_for(stream.wait(), DEADLINE)


def test_an_exec_runs_in_the_task_s_directory_environment_and_cgroup(tmp_path: Path) -> None:
    async def scenario() -> None:
        executor = ProcessExecutor(f"corral-test-{uuid.uuid4().hex[:8]}")
        launch = held(tmp_path, env={"GREETING": "hi"}, workdir="work")
        dirs = TaskDirs(tmp_path / "task")
        (dirs.sandbox / "work").mkdir(parents=True)
        handle = await executor.start(launch, dirs)
        assert isinstance(handle, ProcessHandle)
        script = 'echo "$GREETING $CORRAL_TASK_ID $(pwd)"; cat /proc/self/cgroup; echo err >&2'
        out, err, code = await collect(await handle.exec(["sh", "-c", script + "; exit 3"], False))
        assert code == 3 and err == b"err\n"
        first, *cgroups = out.decode().splitlines()
        assert first == f"hi {launch.task_id} {dirs.sandbox / 'work'}"
        if executor.limits().startswith("cgroup"):
            # In the task's cgroups: where its own process is, and not where the agent is.
            task_cgroups = Path(f"/proc/{handle.pid}/cgroup").read_text().splitlines()
            own_cgroups = Path("/proc/self/cgroup").read_text().splitlines()
            # v1 keeps memory in a hierarchy of its own; v2 has one line, "0::".
            memory = [line for line in cgroups if ":memory:" in line]
            memory = memory or [line for line in cgroups if line.startswith("0::")]
            assert memory and memory[0] in task_cgroups and memory[0] not in own_cgroups
        await release(tmp_path, handle)
        executor.close()  # the cgroups of its own this test's executor made

    asyncio.run(scenario())


def test_an_exec_reads_its_input_until_it_is_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        handle = await start_held(tmp_path)
        stream = await handle.exec(["wc", "-c"], True)
        await stream.write(b"twelve bytes")
        await stream.close_input()
        out, _, code = await collect(stream)
        assert (out.strip(), code) == (b"12", 0)
        await release(tmp_path, handle)

    asyncio.run(scenario())


def test_a_killed_exec_ends_with_its_signal_and_an_ended_task_takes_none(tmp_path: Path) -> None:
    async def scenario() -> None:
        handle = await start_held(tmp_path)
        stream = await handle.exec(["sleep", "60"], False)
        await stream.kill()
        _, _, code = await collect(stream)
        assert code == 128 + 9
        await release(tmp_path, handle)
        with pytest.raises(ExecError, match="has ended"):
            await handle.exec(["true"], False)

    asyncio.run(scenario())


async def read_until(stream: ExecStream, wanted: bytes) -> bytes:
    """An exec's output until ``wanted`` has come."""
    seen = b""
    while wanted not in seen:
        chunk = await asyncio.wait_for(stream.read(), DEADLINE)
        assert chunk is not None, seen
        seen += chunk[1]
    return seen


def test_an_exec_on_a_terminal_leads_its_session_follows_resizes_and_leaves_no_job(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        handle = await start_held(tmp_path)
        # Job control (-m): the background job has a process group of its own, and the
        # terminal open; it must go when the shell ends.
        script = "set -m; sleep 600 & echo job $!; stty size; read x; stty size; exit 5"
        size = TerminalSize(width=80, height=24)
        stream = await handle.exec(["sh", "-c", script], True, tty=True, size=size)
        seen = await read_until(stream, b"24 80\r\n")
        job = int(seen.split(b"job ")[1].split()[0])
        ended = os.pidfd_open(job)  # readable once the job has ended
        assert (await asyncio.to_thread(os.getsid, job)) != os.getsid(0)
        await stream.resize(TerminalSize(width=120, height=40))
        await stream.write(b"go\r")
        await read_until(stream, b"40 120\r\n")
        assert await asyncio.wait_for(stream.wait(), DEADLINE) == 5
        assert await stream.read() is None
        ready, _, _ = await asyncio.to_thread(select.select, [ended], [], [], DEADLINE)
        os.close(ended)
        assert ready, "the job outlived the exec"
        await release(tmp_path, handle)

    asyncio.run(scenario())
