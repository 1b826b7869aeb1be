"""The task keeper: one small process per agent that spawns its process tasks, reaps them and
records how they ended, and outlives the agent's restarts.

Without it each task ran under a ``sh`` wrapper that joined its cgroups, changed directory and
wrote the exit status, so that a task ending while no agent ran kept its status: a second
process per task, about 1 ms of CPU (docs/performance.md). The keeper does that work itself: it
moves into the task's cgroups (a process may move; its child starts there, so limits hold from
the first instruction; the keeper is single-threaded, so its thread's move moves it whole),
changes into the working directory and ``posix_spawn``s the command, and moves back once the
requests it read together are done, before it answers them; once a task has ended it appends
``{"exit": status}`` to the task's record (the shell's encoding, 128 + N for signal N, as the
wrapper did), kills what is left of its process group, and tells the agents connected.

It listens on an abstract unix socket named after the agent's tasks directory, speaks JSON lines
(requests ``spawn`` and ``watch``, answered in order; ``exited`` notices between them), and
exits once it has neither tasks nor agents for ``IDLE`` seconds. Run: ``python -m
corral.agent.keeper NAME``; it writes ``ready`` on stdout once it listens.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

IDLE = 2.0  # seconds without tasks or agents before the keeper exits
_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
# Python ignores these at start and spawned children inherit that: a task is given the defaults.
_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def exit_code(result: os.waitid_result) -> int:
    """A child's end in the shell's encoding: its exit status, or 128 + the signal killing it."""
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return 128 + result.si_status


def start_time(pid: int) -> int:
    """Field 22 of ``/proc/<pid>/stat``: the start time in clock ticks after boot (the command
    name, field 2, may hold spaces and parentheses, so fields count from the last ')')."""
    # Read with os calls: a file object adds four system calls (fstat, ioctl, two lseeks).
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        text = os.read(fd, 4096).decode()
    finally:
        os.close(fd)
    return int(text[text.rindex(")") + 2 :].split()[19])


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a unix socket (as the kernel says)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def join(path: str) -> None:
    """Move into a cgroup through its join file (``corral.agent.cgroups.join_file``): ``0`` in
    v1's ``tasks`` moves this thread, in ``cgroup.procs`` this process. A v1 subtree delegated
    to an agent that is not root may leave ``tasks`` read-only and ``cgroup.procs`` writable:
    then the keeper's pid goes into ``cgroup.procs``, which moves it all the same (it has one
    thread), at the cost of the lock a process's move takes."""
    try:
        _write(path, "0")
    except PermissionError:
        where, _, name = path.rpartition("/")
        if name != "tasks":
            raise
        _write(f"{where}/cgroup.procs", str(os.getpid()))


def spawn(request: dict[str, Any], stdin: int) -> int:
    """Start the task described by ``request`` in its cgroups and working directory; its pid.

    The keeper joins the task's cgroups (a process may move; its child starts there, so limits
    hold from the first instruction) and stays there: ``go_home`` takes it back once the burst
    of spawns it is answering is done, which saves two moves per task (see
    ``corral.agent.cgroups.join_file`` for what a move costs). Raises ``OSError`` (the reason in
    ``strerror``) if it cannot start; the keeper is back in its own directory either way. The
    task reads ``stdin`` (the keeper's ``/dev/null``, opened once).
    """
    outputs: list[int] = []
    try:
        for name in ("stdout", "stderr"):
            outputs.append(os.open(request[name], _OUTPUT_FLAGS, 0o644))
        for path in request["join"]:
            try:
                join(path)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot join the task's cgroup: {exc.strerror}") from exc
        try:
            os.chdir(request["cwd"])
        except OSError as exc:
            raise OSError(exc.errno, f"cannot enter the working directory: {exc.strerror}") from exc
        try:
            argv = request["argv"]
            return os.posix_spawn(
                argv[0],
                argv,
                request["env"],
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate([stdin, *outputs])
                ],
                setsid=True,
                setsigdef=_PYTHON_IGNORES,
            )
        finally:
            os.chdir("/")
    finally:
        for fd in outputs:
            os.close(fd)


def go_home(home: list[str]) -> None:
    """Move the keeper back into its own cgroups (``home``: the files to write ``0`` into)."""
    for path in home:
        try:
            join(path)
        except OSError as exc:  # left in a task's cgroup: its kill would hit the keeper
            print(f"corral keeper: cannot go back to {path}: {exc}", file=sys.stderr)


@dataclass
class Child:
    """A task the keeper started and has not reaped yet."""

    pid: int
    pidfd: int
    record: str


@dataclass
class Agent:
    """A connected agent: its socket, what it sent that is not a whole line yet, and the lines
    for it not sent yet."""

    sock: socket.socket
    pending: bytes = b""
    outbox: list[bytes] = field(default_factory=list)


@dataclass
class Keeper:
    """The keeper's state: its listening socket, its tasks, its agents."""

    listener: socket.socket
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    children: dict[int, Child] = field(default_factory=dict)
    agents: dict[int, Agent] = field(default_factory=dict)  # by socket fd
    devnull: int = field(default_factory=lambda: os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))

    def serve(self) -> None:
        """Run until idle for ``IDLE`` seconds."""
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        idle_since = time.monotonic()
        while True:
            for key, _ in self.selector.select(timeout=IDLE / 4):
                key.data(key.fileobj)
            self._flush()
            if self.children or self.agents:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE:
                return

    def _accept(self, _: object) -> None:
        try:
            sock, _addr = self.listener.accept()
        except BlockingIOError:
            return
        # Anyone on the machine can reach an abstract socket, and this process spawns what it
        # is asked as its own user (root, usually): only that user's processes are served.
        uid = peer_uid(sock)
        if uid != os.getuid():
            print(f"corral keeper: refused a connection of uid {uid}", file=sys.stderr)
            sock.close()
            return
        sock.setblocking(True)
        self.agents[sock.fileno()] = Agent(sock)
        self.selector.register(sock, selectors.EVENT_READ, self._read)

    def _read(self, sock: socket.socket) -> None:
        agent = self.agents[sock.fileno()]
        try:
            data = sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._drop(agent)
            return
        agent.pending += data
        *lines, agent.pending = agent.pending.split(b"\n")
        answers = []
        home: list[str] | None = None  # set once a spawn took the keeper out of its cgroups
        try:
            for line in lines:
                try:
                    request = orjson.loads(line)
                    if request.get("op") != "watch":
                        home = request["home"]
                    answers.append(self._answer(request))
                except Exception as exc:  # never lose the tasks kept for one bad request
                    answers.append({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            # Home before any answer: nobody knows of the tasks just started, so nobody can
            # kill their cgroups with the keeper still in one of them.
            if home is not None:
                go_home(home)
        for answer in answers:
            self._send(agent, answer)

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "watch":
            pid = int(request["pid"])
            return {"op": "watching" if pid in self.children else "unknown", "pid": pid}
        try:
            pid = spawn(request, self.devnull)
        except OSError as exc:
            return {"op": "failed", "error": exc.strerror or str(exc)}
        pidfd = os.pidfd_open(pid)
        self.children[pid] = Child(pid, pidfd, request["record"])
        self.selector.register(pidfd, selectors.EVENT_READ, lambda _: self._reap(pid))
        # Read before it can be reaped (not before this answer): with it, a restarted agent
        # tells the task from a later process given the same pid.
        return {"op": "spawned", "pid": pid, "start": start_time(pid)}

    def _reap(self, pid: int) -> None:
        child = self.children.pop(pid)
        self.selector.unregister(child.pidfd)
        result = os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED)
        os.close(child.pidfd)
        code = exit_code(result) if result is not None else None
        if code is not None:
            # Recorded before anyone is told: an agent told reads it; one restarting finds it.
            with contextlib.suppress(OSError):
                fd = os.open(child.record, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                try:
                    os.write(fd, orjson.dumps({"exit": code}) + b"\n")
                finally:
                    os.close(fd)
        # A task's processes do not outlive it; its pid is pinned as the group's id while any
        # member is left, so this cannot hit a stranger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for agent in list(self.agents.values()):
            self._send(agent, {"op": "exited", "pid": pid, "code": code})

    def _send(self, agent: Agent, message: dict[str, Any]) -> None:
        agent.outbox.append(orjson.dumps(message) + b"\n")

    def _flush(self) -> None:
        """Send each agent what this round of events has for it, in one write: a burst's
        answers and the ends reaped together wake the agent once."""
        for agent in list(self.agents.values()):
            if agent.outbox:
                lines, agent.outbox = agent.outbox, []
                try:
                    agent.sock.sendall(b"".join(lines))
                except OSError:
                    self._drop(agent)

    def _drop(self, agent: Agent) -> None:
        if self.agents.pop(agent.sock.fileno(), None) is not None:
            self.selector.unregister(agent.sock)
            agent.sock.close()


def main() -> None:
    """Listen on the abstract socket named by the first argument and keep tasks until idle."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind("\0" + sys.argv[1])
    except OSError:
        _say(b"taken\n")  # another keeper serves this agent already
        return
    listener.listen(16)
    _say(b"ready\n")
    os.chdir("/")
    Keeper(listener).serve()


def _say(line: bytes) -> None:
    """Tell the agent starting us how it went, in one write, then let go of its pipe."""
    with contextlib.suppress(OSError):
        os.write(1, line)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


if __name__ == "__main__":
    main()
