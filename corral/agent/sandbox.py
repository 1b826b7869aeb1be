"""A task's directories, environment, working directory and command, checked before it starts.

Everything here raises ``LaunchError`` with a reason the user sees, so a bad spec fails at launch
with a message instead of as an obscure exit status of the task.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from corral.agent.executors.base import LaunchError, TaskDirs
from corral.spec.protocol import TaskLaunch

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Taken from the agent's environment; anything else of the agent's stays out of tasks.
AGENT_ENV_KEYS = ("PATH", "LANG", "HOME")


def prepare(dirs: TaskDirs) -> None:
    """Create the task's directory and its sandbox."""
    try:
        try:  # one call each, as a new task needs: not Path.mkdir's walk up the parents
            os.mkdir(dirs.root)
        except FileExistsError:
            pass
        except FileNotFoundError:  # the tasks directory itself is new
            os.makedirs(dirs.root, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(dirs.sandbox)
    except OSError as exc:
        raise LaunchError(f"cannot create the task's sandbox: {exc.strerror or exc}") from exc


def task_env(launch: TaskLaunch, sandbox: Path, agent_env: Mapping[str, str]) -> dict[str, str]:
    """The task's environment: a minimal one of the agent's, the task's ids, ``launch.env``.

    The task's own values win over the agent's; the sandbox path is a fact of this agent, so it
    is set last.
    """
    env = {key: agent_env[key] for key in AGENT_ENV_KEYS if key in agent_env}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(
        CORRAL_TASK_ID=launch.task_id,
        CORRAL_JOB=launch.job,
        MESOS_TASK_ID=launch.task_id,
    )
    env.update(launch.env)
    env.update(CORRAL_SANDBOX=str(sandbox), MESOS_SANDBOX=str(sandbox))
    return env


def resolve_workdir(launch: TaskLaunch, sandbox: Path) -> Path:
    """The task's working directory: ``launch.workdir`` (relative to the sandbox) or the sandbox."""
    if not launch.workdir:
        return sandbox
    workdir = sandbox / launch.workdir  # an absolute workdir replaces the sandbox part
    if not workdir.is_dir():
        raise LaunchError(f"working directory does not exist: {launch.workdir}")
    return workdir


def _executable(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except (OSError, ValueError):
        return False


def resolve_command(name: str, search_path: str, workdir: Path) -> str:
    """The absolute path of the program ``name``, looked up like a shell would.

    A name with a slash is taken relative to the working directory, others are searched in
    ``search_path``. The absolute path is run, so a name like ``echo`` runs the program, never a
    builtin of the shell that wraps the task.
    """
    if not name:
        raise LaunchError("command not found: empty program name")
    where = str(workdir)
    # Plain strings, tried in order until one is found: this runs for every task launched.
    if "/" in name:
        candidates = [os.path.join(where, name)]
    else:
        candidates = [
            os.path.join(where, entry or ".", name) for entry in search_path.split(os.pathsep)
        ]
    for candidate in candidates:
        if _executable(candidate):
            return str(Path(candidate).absolute())
    if any(os.path.exists(candidate) for candidate in candidates):
        raise LaunchError(f"not executable: {name}")
    raise LaunchError(f"command not found: {name}")


class CommandCache:
    """Where each program was found on a search path, kept like a shell's ``hash`` table.

    Looking a name up tries every directory of ``PATH`` before the one holding it, a failed
    ``stat`` each: on an agent starting hundreds of tasks a second that is a few percent of its
    CPU. A program found is taken again for ``ttl`` seconds, once checked to be still there; one
    installed earlier in the path meanwhile is found when the entry expires. Lookups that depend
    on the working directory (a name with a slash, a relative entry in the path) are never kept.
    """

    MAX_ENTRIES = 1024  # many names or paths (each task its own PATH): start again

    def __init__(self, ttl: float = 10.0, now: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._now = now
        self._found: dict[tuple[str, str], tuple[str, float]] = {}

    def resolve(self, name: str, search_path: str, workdir: Path) -> str:
        """``resolve_command``, answered from the table while its entry holds."""
        key = (name, search_path)
        kept = self._found.get(key)
        now = self._now()
        if kept is not None and now < kept[1] and _executable(kept[0]):
            return kept[0]
        found = resolve_command(name, search_path, workdir)
        if "/" not in name and all(
            entry.startswith("/") for entry in search_path.split(os.pathsep)
        ):
            if len(self._found) >= self.MAX_ENTRIES:
                self._found.clear()
            self._found[key] = (found, now + self._ttl)
        return found
