"""Resource limits for process tasks: cgroups v2 or v1, when the host lets the agent write them.

Task cgroups live below the agent's own cgroup (``<agent's cgroup>/corral-<agent id>/<n>-<tag>``)
so whatever limits the agent itself runs under (a systemd slice, a container) still cover its
tasks, and the agent needs write access to its own subtree only. On v2 this needs a delegated
cgroup whose processes allow enabling controllers below it; detection says why when it does not.

An ended task's cgroups go to a later task when they are empty and hold little memory
(``Cgroups.reuse``): making and removing a cgroup (its control files, and the kernel's work after
the ``rmdir``) took a tenth of the CPU of a burst of short tasks.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

V1_CONTROLLERS = ("memory", "cpu")
CPU_PERIOD_US = 100_000  # the kernel's default CFS period; quota = cpus * period
MIB = 1024 * 1024
# An ended task's cgroups are kept for a later task only if they hold at most this much memory.
# What a task leaves charged there (page cache, tmpfs files) stays charged and counts against
# the next task's limit (cache the kernel reclaims at the limit; tmpfs it cannot, without swap).
# The kernel's per-CPU charge stock alone is 0.25 MiB a CPU the task ran on.
REUSE_MAX_CHARGED = 2 * MIB
REUSE_MAX_KEPT = 64  # empty cgroups an agent keeps at most; more are removed
_UNKNOWN_QUOTA = -1  # ``TaskCgroup.checked_quota`` of cgroups that may hold any quota


class CgroupUnavailable(Exception):
    """This cgroup version cannot be used here; the message says why."""


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where it is mounted and which part of the tree it shows."""

    mount: Path
    root: str  # the cgroup shown at the mount point; "/" unless the mount is of a subtree
    controllers: frozenset[str]


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """The cgroup hierarchies of this host: the v2 one, and v1 ones by controller."""

    unified: Hierarchy | None
    v1: dict[str, Hierarchy]


def _unescape_mount(field: str) -> str:
    """Mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> CgroupMounts:
    """Find the cgroup hierarchies in the text of ``/proc/self/mountinfo``."""
    unified: Hierarchy | None = None
    v1: dict[str, Hierarchy] = {}
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, after = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(after) < 3:
            continue
        root, mount = _unescape_mount(fields[3]), Path(_unescape_mount(fields[4]))
        if after[0] == "cgroup2":
            unified = Hierarchy(mount, root, frozenset())
        elif after[0] == "cgroup":
            names = frozenset(opt for opt in after[2].split(",") if opt in V1_CONTROLLERS)
            for name in names:
                v1.setdefault(name, Hierarchy(mount, root, names))
    return CgroupMounts(unified, v1)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map controller to cgroup path from ``/proc/<pid>/cgroup``; the v2 entry has the key ""."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths[""] = parts[2]
        for name in parts[1].split(","):
            if name:
                paths[name] = parts[2]
    return paths


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines, as in ``memory.oom_control`` (v1) and ``memory.events`` (v2)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def oom_killed_v1(
    oom_control: str, failcnt: int, max_usage: int, limit: int, before: int = 0
) -> bool:
    """Whether the OOM killer struck in a v1 memory cgroup, after the ``before`` kills it had
    counted when the task got it.

    Kernels since 4.13 count kills in ``oom_control``; older ones only show that the limit was
    reached (``failcnt`` > 0 with peak usage at the limit), the best evidence they give (both
    are reset when the cgroup is kept for another task).
    """
    counters = parse_flat_keyed(oom_control)
    if "oom_kill" in counters:
        return counters["oom_kill"] > before
    return failcnt > 0 and max_usage >= limit


def oom_killed_v2(memory_events: str, before: int = 0) -> bool:
    """Whether the OOM killer struck in a v2 cgroup after its first ``before`` kills, from its
    ``memory.events``."""
    return parse_flat_keyed(memory_events).get("oom_kill", 0) > before


def _own_dir(hierarchy: Hierarchy, own_path: str) -> Path:
    """The agent's cgroup directory in a hierarchy (the mount point if it is not visible)."""
    root = hierarchy.root.rstrip("/")
    if own_path == hierarchy.root or own_path.startswith(root + "/"):
        return hierarchy.mount / own_path[len(root) :].lstrip("/")
    return hierarchy.mount


def _why(exc: OSError, path: Path) -> str:
    """Turn a failed cgroup write into a reason an operator can act on."""
    if exc.errno == errno.EROFS:
        return f"{path} is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write {path}"
    if exc.errno == errno.EBUSY:  # v2 "no internal processes": controllers need an empty parent
        return f"{path} holds processes (run the agent in a delegated cgroup of its own)"
    return f"cannot write {path}: {exc.strerror or exc}"


def _write(path: Path | str, value: str) -> None:
    # Path.write_text's flags, without its text layer (which costs more than the write):
    # every task's limits go through here.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _write_optional(path: Path | str, value: str) -> None:
    """Write a setting that helps but that some kernels do not have or refuse."""
    try:
        _write(path, value)
    except OSError:
        pass


def _read_text(path: Path) -> str:
    # Path.read_text's text layer costs more than the read: ``reuse`` reads for every task.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _enable_controllers(path: Path) -> None:
    """Enable memory and cpu for the children of a v2 cgroup, writing only if one is missing.

    Writing is refused (EBUSY) in a non-root cgroup that holds processes, even when it would
    change nothing, so an already delegated cgroup must not be written again.
    """
    control = path / "cgroup.subtree_control"
    enabled = set(control.read_text().split()) if control.exists() else set()
    missing = [c for c in V1_CONTROLLERS if c not in enabled]
    if missing:
        _write(control, " ".join("+" + c for c in missing))


def _setup_v2(mounts: CgroupMounts, own: dict[str, str], name: str) -> dict[str, Path]:
    """Make ``<agent's cgroup>/<name>`` with memory and cpu enabled for task cgroups below it."""
    if mounts.unified is None:
        raise CgroupUnavailable("cgroup v2: not mounted")
    own_dir = _own_dir(mounts.unified, own.get("", "/"))
    try:
        available = set((own_dir / "cgroup.controllers").read_text().split())
    except OSError as exc:
        raise CgroupUnavailable(f"cgroup v2: {_why(exc, own_dir)}") from exc
    missing = [c for c in V1_CONTROLLERS if c not in available]
    if missing:
        raise CgroupUnavailable(f"cgroup v2: {', '.join(missing)} not available in {own_dir}")
    parent = own_dir / name
    step = own_dir
    try:
        # A controller reaches a cgroup only if each ancestor enables it for its children.
        _enable_controllers(own_dir)
        step = parent
        parent.mkdir(exist_ok=True)
        _enable_controllers(parent)
    except OSError as exc:
        raise CgroupUnavailable(f"cgroup v2: {_why(exc, step)}") from exc
    return {"": parent}


def _setup_v1(mounts: CgroupMounts, own: dict[str, str], name: str) -> dict[str, Path]:
    """Make ``<agent's cgroup>/<name>`` in the memory and cpu hierarchies; both are required."""
    parents: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        hierarchy = mounts.v1.get(controller)
        if hierarchy is None:
            raise CgroupUnavailable(f"cgroup v1: no {controller} hierarchy mounted")
        parent = _own_dir(hierarchy, own.get(controller, "/")) / name
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise CgroupUnavailable(f"cgroup v1: {_why(exc, parent.parent)}") from exc
        parents[controller] = parent
    # Set once here, not per task: a new memory cgroup takes both from its parent. No swapping,
    # and the OOM killer on (kill at the limit, not hang); kernels without them refuse.
    _write_optional(parents["memory"] / "memory.swappiness", "0")
    _write_optional(parents["memory"] / "memory.oom_control", "0")
    return parents


class Cgroups:
    """Where task cgroups go on this host (v2, v1), or why limits are not enforced."""

    def __init__(self, version: int | None, parents: dict[str, Path], description: str) -> None:
        self.version = version
        self.parents = parents  # controller ("" on v2) -> directory holding the task cgroups
        self.description = description
        self._kept: list[TaskCgroup] = []  # empty cgroups of ended tasks, for the next ones
        self._numbers = itertools.count(1)
        # In the names of the cgroups this process makes: never those of an earlier agent
        # process, still used by the tasks it started.
        self._tag = secrets.token_hex(4)

    @classmethod
    def detect(
        cls,
        name: str = "corral",
        mountinfo: Path = Path("/proc/self/mountinfo"),
        self_cgroup: Path = Path("/proc/self/cgroup"),
    ) -> Cgroups:
        """Use cgroup v2 if it offers memory and cpu, else v1, else none (with the reasons)."""
        try:
            mounts = parse_mountinfo(mountinfo.read_text())
            own = parse_proc_cgroup(self_cgroup.read_text())
        except OSError as exc:
            return cls.disabled(f"cannot read cgroup mounts: {exc}")
        reasons = []
        for version, setup in ((2, _setup_v2), (1, _setup_v1)):
            try:
                parents = setup(mounts, own, name)
            except CgroupUnavailable as exc:
                reasons.append(str(exc))
                continue
            return cls(version, parents, f"cgroup v{version}: {', '.join(V1_CONTROLLERS)}")
        return cls.disabled("; ".join(reasons))

    @classmethod
    def disabled(cls, reason: str) -> Cgroups:
        """No limits, for the given reason."""
        return cls(None, {}, f"none: {reason} (limits not enforced)")

    def home_files(self) -> list[Path]:
        """``TaskCgroup.join_files`` of the agent's own cgroups (where its keeper lives)."""
        assert self.version is not None, "no cgroups in use"
        return [parent.parent / join_file(self.version) for parent in self.parents.values()]

    def release(self) -> bool:
        """Remove the directories holding the task cgroups, with the empty cgroups kept for
        later tasks (those an earlier agent process kept too), once every task's is gone (the
        agent stops): an agent whose data dir is thrown away (a test cluster) would leave them
        behind for good, and every CPU quota written on the host walks all cgroups. False if
        some stay (a task's cgroup still there)."""
        self._kept.clear()
        for parent in self.parents.values():
            try:
                _remove_dirs(path for path in parent.iterdir() if path.is_dir())
            except OSError:
                continue
        return _remove_dirs(self.parents.values())

    @property
    def enabled(self) -> bool:
        """True when task cgroups are created and limits enforced."""
        return self.version is not None

    def create(self, mem_mib: int, cpus: float) -> TaskCgroup | None:
        """Cgroups for a task, with its limits: those of an ended task if some are kept
        (``reuse``), else new ones; None when cgroups are not in use.

        Raises ``OSError`` if the kernel refuses; nothing is left behind then.
        """
        if self.version is None:
            return None
        while self._kept:
            try:
                kept = self._kept.pop()  # the last one kept: the likeliest in the CPU's caches
            except IndexError:  # taken meanwhile (reuse runs on the agent's loop)
                break
            if not os.path.isdir(kept.memory):
                continue  # removed meanwhile (by hand, or by the release of another agent)
            try:
                return _limit(kept, mem_mib, cpus)
            except OSError:  # e.g. what is charged there is over the new limit: new ones
                kept.remove()
        cgroup = self._make()
        try:
            return _limit(cgroup, mem_mib, cpus)
        except OSError:
            cgroup.remove()
            raise

    def _named(self, name: str) -> TaskCgroup:
        """The task cgroups called ``name``, one per hierarchy (with no memory limit known)."""
        assert self.version is not None
        dirs = {c: parent / name for c, parent in self.parents.items()}
        memory = dirs["" if self.version == 2 else "memory"]
        return TaskCgroup(self.version, tuple(dirs.values()), memory, 0)

    def found(self) -> list[TaskCgroup]:
        """The task cgroups below the agent's directories now, whichever agent process made
        them (running tasks' or kept ones); none when cgroups are not in use."""
        if self.version is None:
            return []
        first = next(iter(self.parents.values()))
        try:
            names = [path.name for path in first.iterdir() if path.is_dir()]
        except OSError:
            return []
        return [self._named(name) for name in names]

    def _make(self) -> TaskCgroup:
        """New empty cgroups (no memory limit, no CPU quota)."""
        cgroup = self._named(f"{next(self._numbers)}-{self._tag}")
        try:
            for path in cgroup.dirs:
                os.mkdir(path)
            if self.version == 2:
                # No swap, and kill the whole task on OOM: a task half-killed or swapping at
                # its limit hangs instead of failing. Both files are optional (no swap
                # accounting, old kernels). On v1 both come from the parent (``_setup_v1``).
                _write_optional(f"{cgroup.memory}/memory.swap.max", "0")
                _write_optional(f"{cgroup.memory}/memory.oom.group", "1")
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def reuse(self, cgroup: TaskCgroup) -> bool:
        """Keep an ended task's cgroups for a later task: only if no process is left there,
        little memory is charged there (``REUSE_MAX_CHARGED``) and fewer than
        ``REUSE_MAX_KEPT`` are kept. False if not kept: the caller removes them."""
        if (
            self.version is None
            or len(self._kept) >= REUSE_MAX_KEPT
            or cgroup.version != self.version
            or [path.parent for path in cgroup.dirs] != list(self.parents.values())
        ):
            return False
        try:
            if any(_read_text(procs).strip() for procs in cgroup.procs_files()):
                return False
            if self.version == 2:
                charged = int(_read_text(cgroup.memory / "memory.current"))
                kills = parse_flat_keyed(_read_text(cgroup.memory / "memory.events"))
            else:
                charged = int(_read_text(cgroup.memory / "memory.usage_in_bytes"))
                kills = parse_flat_keyed(_read_text(cgroup.memory / "memory.oom_control"))
                if "oom_kill" not in kills:  # an old kernel: what tells an OOM kill starts over
                    _write(cgroup.memory / "memory.failcnt", "0")
                    _write(cgroup.memory / "memory.max_usage_in_bytes", "0")
        except (OSError, ValueError):
            return False
        if charged > REUSE_MAX_CHARGED:
            return False
        self._kept.append(replace(cgroup, oom_kills_before=kills.get("oom_kill", 0)))
        return True


def _limit(cgroup: TaskCgroup, mem_mib: int, cpus: float) -> TaskCgroup:
    """Give the task's limits to its cgroups (answered with them in place, ``mem_mib`` and
    ``checked_quota``). Raises ``OSError`` if the kernel refuses."""
    if mem_mib != cgroup.mem_mib:
        if cgroup.version == 2:
            _write(f"{cgroup.memory}/memory.max", str(mem_mib * MIB) if mem_mib > 0 else "max")
        else:
            _limit_memory_v1(cgroup.memory, cgroup.mem_mib, mem_mib)
        cgroup = replace(cgroup, mem_mib=mem_mib)
    # The quota is written here so that the kernel checks it (one above the agent's own is
    # refused), unless these cgroups took it before; then lifted until the task has started:
    # the keeper spawns from inside the task's cgroups, and a small quota, used up by the new
    # process's exec, would throttle the keeper itself for the rest of the period (100 ms), and
    # with it every start of the agent. ``limit_cpu`` sets it again once the keeper is out. An
    # earlier task's cgroups hold its quota: lifted too.
    quota = cpu_quota(cpus)
    if quota is not None and quota != cgroup.checked_quota:
        cgroup.limit_cpu(cpus)
        cgroup = replace(cgroup, checked_quota=quota)
    if quota is not None or cgroup.checked_quota is not None:
        cgroup.lift_cpu()
    return cgroup


def cpu_quota(cpus: float) -> int | None:
    """The CFS quota (µs per ``CPU_PERIOD_US``) holding a task to ``cpus``; None for none."""
    return max(1000, int(cpus * CPU_PERIOD_US)) if cpus > 0 else None


def _remove_dirs(paths: Iterable[Path]) -> bool:
    """Remove each cgroup directory that is still there; False if some are busy."""
    removed = True
    for path in paths:
        try:
            path.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            removed = False
    return removed


def join_file(version: int) -> str:
    """The file of a cgroup that a thread writes ``0`` into to move there (its children start
    there). On v1 ``tasks``, which moves the writing thread alone. A process's move takes the
    lock every fork, exec and exit of the machine takes, and when no move came just before,
    waits for an RCU grace period first: 5-16 ms on the test host, a lone task's start several
    times over. A thread moving itself is moved without that lock (Linux 6.18 here; a kernel
    that takes it all the same costs what a process's move does). On v2 a cgroup of the usual
    kind takes whole processes only: ``cgroup.procs``."""
    return "tasks" if version == 1 else "cgroup.procs"


def _limit_memory_v1(memory: Path, old_mib: int, mem_mib: int) -> None:
    """Change a v1 memory limit (0: none). Swappiness and the OOM killer come from the parent
    (``_setup_v1``)."""
    limit = str(mem_mib * MIB) if mem_mib > 0 else "-1"
    writes = [("memory.limit_in_bytes", _write), ("memory.memsw.limit_in_bytes", _write_optional)]
    # memsw (memory + swap) may never be below the memory limit: a limit going up moves memsw
    # first, one going down moves it second. It is optional (no swap accounting).
    if mem_mib <= 0 or 0 < old_mib < mem_mib:
        writes.reverse()
    for name, write in writes:
        write(f"{memory}/{name}", limit)


@dataclass(frozen=True, slots=True)
class TaskCgroup:
    """The cgroup directories of one task (one on v2, one per hierarchy on v1)."""

    version: int
    dirs: tuple[Path, ...]
    memory: Path
    mem_mib: int  # the memory limit in place (0: none)
    oom_kills_before: int = 0  # OOM kills the cgroups had counted for earlier tasks
    # The CPU quota the kernel took for them (None: none ever set); a later task's may differ.
    checked_quota: int | None = None

    def procs_files(self) -> list[Path]:
        """The files a process writes its pid into to join every cgroup of the task."""
        return [path / "cgroup.procs" for path in self.dirs]

    def join_files(self) -> list[Path]:
        """The files the task's keeper writes ``0`` into to join every cgroup of the task."""
        return [path / join_file(self.version) for path in self.dirs]

    def _cpu_quota(self) -> str:
        """The file of the task's CPU quota (v1: the cpu hierarchy's directory is made last,
        in ``V1_CONTROLLERS`` order)."""
        if self.version == 2:
            return f"{self.memory}/cpu.max"
        return f"{self.dirs[-1]}/cpu.cfs_quota_us"

    def lift_cpu(self) -> None:
        """No CPU quota, until ``limit_cpu``."""
        _write(self._cpu_quota(), "max" if self.version == 2 else "-1")

    def limit_cpu(self, cpus: float) -> None:
        """Hold the task to ``cpus`` (none: no quota). Raises ``OSError`` if refused. A new
        cgroup's CFS period is the kernel's default, ``CPU_PERIOD_US``."""
        quota = cpu_quota(cpus)
        if quota is None:
            return
        _write(self._cpu_quota(), f"{quota} {CPU_PERIOD_US}" if self.version == 2 else str(quota))

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process of the task (False if it cannot tell)."""
        try:
            if self.version == 2:
                return oom_killed_v2(
                    (self.memory / "memory.events").read_text(), self.oom_kills_before
                )
            return oom_killed_v1(
                (self.memory / "memory.oom_control").read_text(),
                _read_int(self.memory / "memory.failcnt"),
                _read_int(self.memory / "memory.max_usage_in_bytes"),
                _read_int(self.memory / "memory.limit_in_bytes", -1),
                self.oom_kills_before,
            )
        except OSError:
            return False

    def pids(self) -> set[int]:
        """The processes in the task's cgroups now."""
        found: set[int] = set()
        for procs in self.procs_files():
            try:
                found.update(int(line) for line in procs.read_text().split())
            except (OSError, ValueError):
                continue
        return found

    def kill_all(self) -> None:
        """SIGKILL every process in the task's cgroups, even those that left its process group."""
        kill_file = self.memory / "cgroup.kill"  # v2 on Linux >= 5.14: atomic, no pid races
        if self.version == 2 and kill_file.exists():
            try:
                _write(kill_file, "1")
                return
            except OSError:
                pass
        for pid in self.pids() - {os.getpid()}:  # never the agent, whatever went wrong before
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue

    def remove(self) -> bool:
        """Remove the task's cgroups; False while some are busy (processes still exiting)."""
        return _remove_dirs(self.dirs)

    def dump(self) -> str:
        """JSON for the task's meta directory, so a restarted agent finds the cgroups again."""
        return json.dumps(
            {
                "version": self.version,
                "dirs": [str(d) for d in self.dirs],
                "memory": str(self.memory),
                "mem_mib": self.mem_mib,
                "oom_kills_before": self.oom_kills_before,
                "checked_quota": self.checked_quota,
            }
        )

    @classmethod
    def load(cls, text: str) -> TaskCgroup:
        """Read what ``dump`` wrote. Raises ``ValueError`` if it is not that."""
        try:
            data = json.loads(text)
            # An agent that made cgroups per task did not say: a quota may be in place.
            quota = data.get("checked_quota", _UNKNOWN_QUOTA)
            return cls(
                int(data["version"]),
                tuple(Path(d) for d in data["dirs"]),
                Path(data["memory"]),
                int(data["mem_mib"]),
                int(data.get("oom_kills_before", 0)),
                None if quota is None else int(quota),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a task cgroup record: {exc}") from exc
