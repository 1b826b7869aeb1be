"""What the agent keeps about a task for its own restart: one file, ``<task dir>/task.jsonl``.

One JSON object a line, appended as the facts come: the launch spec with what the executor knows
before the start (its cgroups, its host ports), then its pid once spawned, its exit status (the
agent's task keeper appends it; under agents before the keeper, the task's ``sh`` wrapper),
when it was RUNNING (tasks with health checks), its end once reported. A later line adds to the
earlier ones. One file instead of one per fact: every file the agent makes costs 0.1-0.3 ms on
a busy ext4 (see docs/performance.md), and a restarted agent finds everything in one read.

Appends are single ``write`` calls on an ``O_APPEND`` descriptor, so lines written by the agent and
by the keeper at once never mix; a line a reader cannot parse (cut short by a crash of the
machine) is skipped.

Agents before this file kept the same facts as files in ``meta/`` (``launch.json``, ``cgroup.json``,
``ports.json``, ``pid``, ``exit_code``, ``running_since``, ``done``, ``container``); ``read`` takes
them too, so tasks an older agent started are recovered, and their ends appended here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

RECORD = "task.jsonl"
LEGACY_DIR = "meta"  # where agents before the record kept these facts, one file each

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC


@dataclass(slots=True)
class TaskRecord:
    """Everything recorded about one task; None for what was not."""

    launch: dict[str, Any] | None = None  # the launch spec as JSON
    cgroup: str | None = None  # ``TaskCgroup.dump()``
    ports: list[int] = field(default_factory=list)  # host ports given, in order
    pid: tuple[int, int] | None = None  # the task's leader and its start time (clock ticks)
    exit: int | None = None  # its exit status, 128 + N for signal N (as a shell says it)
    container: str | None = None  # a docker task's container id
    keeper: bool = False  # a process task started by the agent's keeper (not under a wrapper)
    running_since: float | None = None  # wall-clock time it was RUNNING
    ended: bool = False  # its end was reported
    end: object = None  # that end as recorded: {"state", "reason", "exit_code"}
    ended_at: float | None = None  # when it was recorded (the file's modification time)


def path(root: Path) -> Path:
    """The record of the task whose directory is ``root``."""
    return root / RECORD


class RawJson(str):
    """A value that is JSON already (a pydantic model's ``model_dump_json()``), written as is."""


def line(**facts: object) -> bytes:
    """One line of the record holding ``facts``."""
    parts = (
        orjson.dumps(key)
        + b":"
        + (value.encode() if isinstance(value, RawJson) else orjson.dumps(value))
        for key, value in facts.items()
    )
    return b"{" + b",".join(parts) + b"}\n"


def create(root: Path, **facts: object) -> int:
    """Start the task's record afresh with ``facts``; answers the open descriptor (``O_APPEND``)
    for more lines, which the caller closes."""
    fd = os.open(path(root), _FLAGS | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, line(**facts))
    except BaseException:
        os.close(fd)
        raise
    return fd


def append(root: Path, **facts: object) -> None:
    """Add ``facts`` to the task's record (created if the task directory has none yet)."""
    fd = os.open(path(root), _FLAGS | os.O_CREAT, 0o644)
    try:
        os.write(fd, line(**facts))
    finally:
        os.close(fd)


def read(root: Path) -> TaskRecord:
    """Everything recorded about the task, by this agent's version and by older ones."""
    record = TaskRecord()
    _read_legacy(root / LEGACY_DIR, record)
    try:
        with path(root).open("rb") as file:
            text = file.read()
            mtime = os.fstat(file.fileno()).st_mtime
    except OSError:
        return record
    for raw in text.splitlines():
        try:
            facts = json.loads(raw)
        except ValueError:
            continue  # cut short
        if isinstance(facts, dict):
            _take(record, facts)
    if record.ended and record.ended_at is None:
        record.ended_at = mtime
    return record


def _take(record: TaskRecord, facts: dict[str, Any]) -> None:
    """Fold one line's facts into ``record``, ignoring values of the wrong shape."""
    launch, cgroup, ports = facts.get("launch"), facts.get("cgroup"), facts.get("ports")
    if isinstance(launch, dict):
        record.launch = launch
    if isinstance(cgroup, str):
        record.cgroup = cgroup
    if isinstance(ports, list):
        record.ports = [port for port in ports if isinstance(port, int)]
    pid = facts.get("pid")
    if isinstance(pid, list) and len(pid) == 2 and all(isinstance(n, int) for n in pid):
        record.pid = (pid[0], pid[1])
    if isinstance(facts.get("exit"), int):
        record.exit = facts["exit"]
    if facts.get("keeper") is True:
        record.keeper = True
    if isinstance(facts.get("container"), str):
        record.container = facts["container"]
    if isinstance(facts.get("running_since"), int | float):
        record.running_since = float(facts["running_since"])
    if "end" in facts:
        record.ended, record.end, record.ended_at = True, facts["end"], None


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_legacy(meta: Path, record: TaskRecord) -> None:
    """Take the facts an older agent kept as files in ``meta/``."""
    if not meta.is_dir():
        return  # no older agent's task
    try:
        spec = json.loads(_text(meta / "launch.json") or "")
        record.launch = spec if isinstance(spec, dict) else None
    except ValueError:
        pass
    record.cgroup = _text(meta / "cgroup.json")
    try:
        ports = json.loads(_text(meta / "ports.json") or "[]")
        record.ports = [port for port in ports if isinstance(port, int)]
    except (ValueError, TypeError):
        pass
    try:
        pid, start_time = (_text(meta / "pid") or "").split()
        record.pid = (int(pid), int(start_time))
    except ValueError:
        pass
    try:
        record.exit = int((_text(meta / "exit_code") or "").strip())
    except ValueError:
        pass
    if (container := _text(meta / "container")) is not None:
        record.container = container.strip() or None
    try:
        record.running_since = float(_text(meta / "running_since") or "")
    except ValueError:
        pass
    done = _text(meta / "done")
    if done is not None:
        record.ended = True
        try:
            record.end = json.loads(done)
        except ValueError:
            record.end = None  # an older agent touched it empty
        try:
            record.ended_at = (meta / "done").stat().st_mtime
        except OSError:
            record.ended_at = None
