"""The task keeper runs as the agent's user (root, usually) and spawns whatever it is asked on
its socket, which any local process can reach (an abstract unix socket has no file mode). So it
serves only processes of its own user, and the agent talks only to a keeper of its own user:
another user can neither start commands as root through it nor stand in for it and be handed
the tasks' commands and environments."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.agent.executors.base import LaunchError
from corral.agent.keeper_client import KeeperClient, KeeperGone, keeper_name
from tests.agent.helpers import DEADLINE

NOBODY = 65534

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="acts as another user: run the tests as root (CI does)"
)


def as_nobody(act: Callable[[], str]) -> tuple[int, int]:
    """Fork a child that becomes the user nobody and runs ``act``; answers its pid and the read
    end of a pipe that carries what ``act`` answered. (Forked, not run: nobody may not be allowed
    to execute this interpreter.)"""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, act().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def answer_of(pid: int, read: int) -> str:
    """What the child said, once it ended."""
    with os.fdopen(read) as said:
        text = said.read()
    os.waitpid(pid, 0)
    return text


def test_another_user_cannot_have_the_keeper_start_anything(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    target = tmp_path / "made-by-root"
    name = keeper_name(tmp_path / "tasks")

    request = {
        "op": "spawn",
        "argv": ["/usr/bin/touch", str(target)],
        "env": {},
        "cwd": "/",
        "stdout": "/dev/null",
        "stderr": "/dev/null",
        "join": [],
        "home": [],
        "record": "/dev/null",
    }

    def intrude() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(DEADLINE)
            sock.connect("\0" + name)
            try:
                sock.sendall(json.dumps(request).encode() + b"\n")
                return repr(sock.recv(4096))
            except OSError as exc:  # hung up on before or while it spoke
                return f"hung up: {exc.strerror}"

    async def scenario() -> str:
        # The agent's side starts the keeper (as root) and stays connected meanwhile, so that it
        # does not leave for want of agents.
        client = KeeperClient(tmp_path / "tasks")
        try:
            assert not await client.watch(os.getpid())
            return await asyncio.to_thread(lambda: answer_of(*as_nobody(intrude)))
        finally:
            await client.close()

    said = asyncio.run(scenario())
    assert said == "b''" or said.startswith("hung up"), said  # unanswered
    assert not target.exists()


def test_the_agent_does_not_talk_to_a_keeper_socket_of_another_user(tmp_path: Path) -> None:
    name = keeper_name(tmp_path / "tasks")

    def squat() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind("\0" + name)
            sock.listen(1)
            os.write(ready_w, b"ready")
            conn, _ = sock.accept()
            conn.settimeout(DEADLINE)
            with contextlib.suppress(OSError):
                while conn.recv(1 << 16):  # what a fake keeper would be handed
                    pass
        return "done"

    ready_r, ready_w = os.pipe()
    squatter, said = as_nobody(squat)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 16) == b"ready"

        async def spawn() -> None:
            client = KeeperClient(tmp_path / "tasks")
            try:
                await asyncio.wait_for(client.spawn({"argv": ["/bin/true"]}), DEADLINE)
            finally:
                await client.close()

        with pytest.raises((KeeperGone, LaunchError), match=f"uid {NOBODY}"):
            asyncio.run(spawn())
    finally:
        os.close(ready_r)
        os.kill(squatter, signal.SIGKILL)
        answer_of(squatter, said)
