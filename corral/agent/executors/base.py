"""The contract between the agent loop and an executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.spec.execs import TerminalSize
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState


class LaunchError(Exception):
    """The task could not be started; the message is the reason the user sees."""


@dataclass(frozen=True, slots=True)
class TaskExit:
    """How a task ended: FINISHED, FAILED or KILLED, with exit code and a reason."""

    state: TaskState
    exit_code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command run beside a task (a health check) ended."""

    exit_code: int | None  # None: it did not run to its end, ``error`` says why
    output: str = ""  # the end of what it wrote, stdout and stderr together
    error: str = ""


@dataclass(frozen=True, slots=True)
class TaskDirs:
    """Where one task lives on the agent: its directory ``root`` holds the sandbox the task
    sees and the agent's own record of it (``corral.agent.task_record``)."""

    root: Path
    # The task's working area: ``stdout``, ``stderr`` and whatever it writes.
    sandbox: Path = field(init=False)

    def __post_init__(self) -> None:
        # Absolute: the keeper that spawns the task works from /, Docker mounts only absolute
        # paths, and an agent's data dir may be given relative (``corral up``: ./.corral).
        object.__setattr__(self, "root", self.root.absolute())
        object.__setattr__(self, "sandbox", self.root / "sandbox")  # read often: made once


class ExecError(Exception):
    """A command could not be started inside a task; the message says why."""


class ExecStream(Protocol):
    """A command running inside a task (``corral exec``, a gang's remote shell)."""

    async def write(self, data: bytes) -> None:
        """Give the command input (only if it was started with stdin)."""
        ...

    async def close_input(self) -> None:
        """End the command's input. Idempotent."""
        ...

    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output: (1 for stdout or 2 for stderr, bytes); None once the
        command has ended and its output is all read."""
        ...

    async def wait(self) -> int | None:
        """The command's exit status once it has ended (None if it cannot be known)."""
        ...

    async def kill(self) -> None:
        """Stop the command and what it started. Idempotent."""
        ...

    async def resize(self, size: TerminalSize) -> None:
        """Give the command's terminal a new window size (nothing without a terminal)."""
        ...


class TaskHandle(Protocol):
    """A started task."""

    task_id: str

    async def wait(self) -> TaskExit:
        """Return once the task has ended. Safe to call more than once (same answer)."""
        ...

    async def kill(self, grace: float) -> None:
        """Ask the task to stop (SIGTERM), force it (SIGKILL) after ``grace`` seconds.

        Idempotent; returns once the kill was delivered, not when the task has ended.
        """
        ...

    async def run_command(self, command: str, timeout: float) -> CommandResult:
        """Run ``sh -c command`` where the task runs, with its environment; at most ``timeout``.

        Never raises for the command's sake: a command that cannot run or overruns answers a
        ``CommandResult`` without exit code.
        """
        ...

    async def exec(
        self, command: list[str], stdin: bool, tty: bool = False, size: TerminalSize | None = None
    ) -> ExecStream:
        """Start ``command`` (argv) inside the running task: its sandbox, environment and
        limits (``stdin``: input will follow; else it reads nothing). With ``tty`` its stdin,
        stdout and stderr are a new terminal (of window ``size`` if given), all its output
        read as stdout. ``ExecError`` if it cannot start there."""
        ...


class Executor(Protocol):
    """Starts tasks of one driver and finds them again after an agent restart."""

    driver: str

    def limits(self) -> str:
        """One line saying which resource limits are enforced, or why none are."""
        ...

    def ports(self, task_id: str) -> list[int]:
        """The host ports given to a started task: ``PORT0..n``, in the order asked for."""
        ...

    async def start(self, launch: TaskLaunch, dirs: TaskDirs) -> TaskHandle:
        """Start the task. Raise ``LaunchError`` with a user-facing reason if it cannot."""
        ...

    async def recover(self, launch: TaskLaunch, dirs: TaskDirs) -> TaskHandle | TaskExit:
        """Re-attach to a task started by an earlier agent process.

        Answer a handle if it still runs, or how it ended if it has ended meanwhile.
        """
        ...

    async def open(self, tasks_dir: Path) -> None:
        """Get ready to start tasks whose directories go in ``tasks_dir``: called when the
        agent starts, before it recovers or launches any. Raises nothing (what failed is
        tried again at the first launch)."""
        ...

    def close(self) -> None:
        """Give back what the driver holds on the host for its tasks; called when the agent
        stops, once its tasks have ended."""
        ...
