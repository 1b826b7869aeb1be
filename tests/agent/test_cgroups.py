"""Cgroup detection, limits and bookkeeping: parsers in memory, then the host's real cgroups."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from corral.agent import keeper
from corral.agent.cgroups import (
    Cgroups,
    Hierarchy,
    TaskCgroup,
    oom_killed_v1,
    oom_killed_v2,
    parse_flat_keyed,
    parse_mountinfo,
    parse_proc_cgroup,
)
from corral.agent.executors.process import ProcessExecutor
from corral.agent.ports import PortPool
from corral.spec.states import TaskState
from tests.agent.helpers import RecordingAgent, free_range, launch

MOUNTINFO = """\
24 31 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/my\\040unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_mountinfo_yields_the_v2_mount_and_v1_mounts_by_controller() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts.unified == Hierarchy(Path("/sys/fs/cgroup/my unified"), "/", frozenset())
    assert mounts.v1["cpu"].mount == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert mounts.v1["memory"] == Hierarchy(
        Path("/sys/fs/cgroup/memory"), "/docker/abc", frozenset({"memory"})
    )
    assert set(mounts.v1) == {"cpu", "memory"}


def test_proc_cgroup_maps_each_controller_and_v2_to_a_path() -> None:
    text = "9:name=systemd:/\n4:memory:/agent\n1:cpu,cpuacct:/a/b\n0::/unified/x\n"
    assert parse_proc_cgroup(text) == {
        "name=systemd": "/",
        "memory": "/agent",
        "cpu": "/a/b",
        "cpuacct": "/a/b",
        "": "/unified/x",
    }


def test_flat_keyed_files_parse_to_counters() -> None:
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\nbad\n") == {
        "oom_kill_disable": 0,
        "under_oom": 0,
        "oom_kill": 2,
    }


@pytest.mark.parametrize(
    ("oom_control", "failcnt", "max_usage", "limit", "killed"),
    [
        pytest.param("oom_kill_disable 0\noom_kill 1\n", 0, 0, 100, True, id="counted kill"),
        pytest.param("oom_kill_disable 0\noom_kill 0\n", 5, 100, 100, False, id="counted none"),
        pytest.param("oom_kill_disable 0\n", 5, 100, 100, True, id="old kernel: limit hit"),
        pytest.param("oom_kill_disable 0\n", 0, 50, 100, False, id="old kernel: under limit"),
    ],
)
def test_v1_oom_kills_come_from_the_counter_or_else_from_hitting_the_limit(
    oom_control: str, failcnt: int, max_usage: int, limit: int, killed: bool
) -> None:
    assert oom_killed_v1(oom_control, failcnt, max_usage, limit) is killed
    # In cgroups kept from an earlier task, only kills after the ones counted then are the task's.
    assert oom_killed_v1(oom_control, failcnt, max_usage, limit, before=1) is (
        killed and "oom_kill" not in parse_flat_keyed(oom_control)
    )


def test_v2_oom_kills_come_from_memory_events() -> None:
    assert oom_killed_v2("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert not oom_killed_v2("low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n")
    assert not oom_killed_v2("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", before=1)
    assert oom_killed_v2("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n", before=1)


def test_a_task_cgroup_record_round_trips_and_rejects_garbage() -> None:
    dirs = (Path("/m/t"), Path("/c/t"))
    cgroup = TaskCgroup(1, dirs, Path("/m/t"), 64, oom_kills_before=2, checked_quota=5000)
    assert TaskCgroup.load(cgroup.dump()) == cgroup
    # Written by an agent that made cgroups per task: no kills before the task, and whatever
    # quota is in place is taken for one to lift before the next task.
    older = '{"version": 1, "dirs": ["/m/t", "/c/t"], "memory": "/m/t", "mem_mib": 64}'
    loaded = TaskCgroup.load(older)
    assert (loaded.dirs, loaded.mem_mib, loaded.oom_kills_before) == (dirs, 64, 0)
    assert loaded.checked_quota not in (None, 5000)
    with pytest.raises(ValueError):
        TaskCgroup.load('{"version": 1}')
    with pytest.raises(ValueError):
        TaskCgroup.load("not json")


def _detect(tmp_path: Path, mountinfo: str, self_cgroup: str) -> Cgroups:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(self_cgroup)
    return Cgroups.detect("corral", tmp_path / "mountinfo", tmp_path / "cgroup")


def test_without_cgroup_mounts_limits_are_off_with_the_reasons(tmp_path: Path) -> None:
    cgroups = _detect(tmp_path, "24 31 0:22 / /sys rw - sysfs sysfs rw\n", "0::/\n")
    assert not cgroups.enabled
    assert cgroups.description == (
        "none: cgroup v2: not mounted; cgroup v1: no memory hierarchy mounted (limits not enforced)"
    )


def test_v1_is_used_below_the_agents_own_cgroup_when_v2_lacks_controllers(tmp_path: Path) -> None:
    # Plain directories stand in for the hierarchies: detection only makes directories there.
    for name in ("unified", "memory/agent", "cpu"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "unified" / "cgroup.controllers").write_text("pids\n")
    mountinfo = (
        f"1 1 0:1 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
        f"2 1 0:2 / {tmp_path / 'memory'} rw - cgroup cgroup rw,memory\n"
        f"3 1 0:3 / {tmp_path / 'cpu'} rw - cgroup cgroup rw,cpu\n"
    )
    cgroups = _detect(tmp_path, mountinfo, "0::/\n4:memory:/agent\n1:cpu:/\n")
    assert cgroups.description == "cgroup v1: memory, cpu"
    assert cgroups.parents == {
        "memory": tmp_path / "memory" / "agent" / "corral",
        "cpu": tmp_path / "cpu" / "corral",
    }
    assert all(parent.is_dir() for parent in cgroups.parents.values())


def test_v2_is_preferred_when_it_offers_memory_and_cpu(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mountinfo = f"1 1 0:1 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
    cgroups = _detect(tmp_path, mountinfo, "0::/\n")
    assert cgroups.description == "cgroup v2: memory, cpu"
    assert cgroups.parents == {"": tmp_path / "unified" / "corral"}
    enabled = (tmp_path / "unified" / "corral" / "cgroup.subtree_control").read_text()
    assert enabled == "+memory +cpu"


def _host_cgroups(name: str = "corral") -> Cgroups:
    cgroups = Cgroups.detect(name)
    if not cgroups.enabled:
        reason = f"needs writable cgroups with memory and cpu; here: {cgroups.description}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return cgroups


def _read(path: Path) -> str:
    return path.read_text().strip()


def test_a_task_cgroup_carries_the_limits_and_is_removed_after_its_processes() -> None:
    cgroups = _host_cgroups()
    cgroup = cgroups.create(64, 0.5)
    assert cgroup is not None
    # The CPU quota waits until the task has started (its keeper spawns from inside).
    cpu_quota = (
        cgroup.memory / "cpu.max"
        if cgroup.version == 2
        else next(path for path in cgroup.dirs if path != cgroup.memory) / "cpu.cfs_quota_us"
    )
    assert _read(cpu_quota).split()[0] in ("-1", "max")
    cgroup.limit_cpu(0.5)
    if cgroup.version == 1:
        assert _read(cgroup.memory / "memory.limit_in_bytes") == str(64 * 1024 * 1024)
        period = int(_read(cpu_quota.with_name("cpu.cfs_period_us")))
        assert int(_read(cpu_quota)) == period // 2
        # Taken from the parent, where the agent sets them once: no swap, the OOM killer on.
        assert _read(cgroup.memory / "memory.swappiness") == "0"
        assert "oom_kill_disable 0" in _read(cgroup.memory / "memory.oom_control")
    else:
        assert _read(cgroup.memory / "memory.max") == str(64 * 1024 * 1024)
        assert _read(cgroup.memory / "cpu.max") == "50000 100000"
    # A process that joins (like the task wrapper does) keeps the cgroup busy until it is killed.
    join = "; ".join(f'echo $$ > "{procs}"' for procs in cgroup.procs_files())
    script = f"{join}; echo joined; exec sleep 1000"
    member = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE)
    try:
        assert member.stdout is not None and member.stdout.readline() == b"joined\n"
        assert cgroup.pids() == {member.pid}
        assert not cgroup.remove()
        cgroup.kill_all()
        assert member.wait(timeout=15) == -signal.SIGKILL
        assert cgroup.remove()
        assert not any(path.exists() for path in cgroup.dirs)
    finally:
        member.kill()
        member.wait()
        if member.stdout is not None:
            member.stdout.close()
        cgroup.remove()


def test_a_stopped_agent_takes_its_cgroups_with_it(tmp_path: Path) -> None:
    # Each agent's task cgroups go below directories of its own; a test cluster's agents, whose
    # data dirs are thrown away, left theirs on the host for good, hundreds per test run.
    cgroups = _host_cgroups(f"corral-test-{uuid.uuid4().hex[:12]}")
    parents = list(cgroups.parents.values())
    task = launch(shell="exec sleep 1000")
    short = launch(command=["true"])

    async def scenario() -> None:
        executor = ProcessExecutor(cgroups=cgroups, port_pool=PortPool(*free_range(2)))
        agent = RecordingAgent(tmp_path, {"process": executor})
        try:
            # Its cgroups are kept for the next task once it has ended; they go too.
            await agent.launch(short)
            assert (await agent.ended(short.task_id)).state == TaskState.FINISHED
            await agent.launch(task)
            await agent.update(task.task_id, lambda u: u.state == TaskState.RUNNING, "RUNNING")
            assert not cgroups.release()  # the running task's cgroup is there: kept
            assert all(any(p.is_dir() for p in parent.iterdir()) for parent in parents)
        finally:
            await agent.stop(timeout=10)
        assert (await agent.ended(task.task_id)).state == TaskState.KILLED

    asyncio.run(scenario())
    assert not [parent for parent in parents if parent.exists()]


def test_the_keeper_s_way_in_moves_the_writing_thread_alone_on_v1() -> None:
    # On v1 a thread moving itself alone skips the lock a process's move waits for (a task's
    # start took 14-26 ms instead of 3 after a pause); the keeper is single-threaded, so its
    # thread's move is the keeper's. On v2 ``cgroup.procs``: the whole process.
    cgroups = _host_cgroups()
    cgroup = cgroups.create(64, 0)
    assert cgroup is not None
    # A helper thread joins; then each thread says how many of the task's cgroups it is in.
    joins = [str(path) for path in cgroup.join_files()]
    script = f"""
import threading
def where():
    with open("/proc/thread-self/cgroup") as f:
        return f.read().count("/{cgroup.dirs[0].name}\\n")
def join():
    for path in {joins!r}:
        with open(path, "w") as f:
            f.write("0")
    found.append(where())
found = []
helper = threading.Thread(target=join)
helper.start()
helper.join()
print(found[0], where())
"""
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
        helper, main = (int(n) for n in out.stdout.split())
        assert helper == len(cgroup.dirs)  # in every cgroup of the task
        if cgroup.version == 1:
            assert main == 0  # the process's other thread stayed where it was
            assert all(str(path).endswith("/tasks") for path in cgroups.home_files())
        else:
            assert main == 1  # the process moved whole
    finally:
        cgroup.remove()


def _join_and_run(cgroup: TaskCgroup, command: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``sh -c command`` inside the task's cgroups (joined as the keeper's children start)."""
    join = "; ".join(f'echo $$ > "{procs}"' for procs in cgroup.procs_files())
    return subprocess.run(["/bin/sh", "-c", f"{join}; {command}"], capture_output=True)


def _memory_limit(cgroup: TaskCgroup) -> str:
    return _read(cgroup.memory / ("memory.max" if cgroup.version == 2 else "memory.limit_in_bytes"))


def test_an_ended_task_s_cgroups_go_to_the_next_task_with_its_own_limits() -> None:
    # A mkdir and an rmdir of a cgroup, and the kernel's work after it, were a tenth of the CPU
    # a burst of short tasks took: an ended task's empty cgroups are the next task's.
    cgroups = _host_cgroups(f"corral-test-{uuid.uuid4().hex[:12]}")
    try:
        first = cgroups.create(64, 0.5)
        assert first is not None
        first.limit_cpu(0.5)
        assert _join_and_run(first, "true").returncode == 0
        assert cgroups.reuse(first)
        assert [found.dirs for found in cgroups.found()] == [first.dirs]  # kept, still there
        lower = cgroups.create(32, 0.25)
        assert lower is not None and lower.dirs == first.dirs
        assert lower.mem_mib == 32 and _memory_limit(lower) == str(32 * 1024 * 1024)
        quota = (
            lower.memory / "cpu.max" if lower.version == 2 else lower.dirs[-1] / "cpu.cfs_quota_us"
        )
        assert _read(quota).split()[0] in ("-1", "max")  # lifted until the task has started
        other = cgroups.create(16, 0)  # none is kept now: new ones
        assert other is not None and other.dirs != first.dirs
        # Back, then to a task with a higher limit, and to one with none.
        assert cgroups.reuse(lower)
        higher = cgroups.create(128, 0)
        assert higher is not None and higher.dirs == first.dirs
        assert _memory_limit(higher) == str(128 * 1024 * 1024)
        assert _join_and_run(higher, "true").returncode == 0
        assert cgroups.reuse(higher)
        unlimited = cgroups.create(0, 0)
        assert unlimited is not None and unlimited.dirs == first.dirs
        assert int(_memory_limit(unlimited).replace("max", str(2**63))) > 2**40
        # A task given no CPU quota runs without the one its cgroups' last task had.
        unlimited.limit_cpu(1.5)
        assert cgroups.reuse(unlimited)
        unquoted = cgroups.create(0, 0)
        assert unquoted is not None and unquoted.dirs == first.dirs
        assert _read(quota).split()[0] in ("-1", "max")
        # One given the same quota is lifted until it has started too.
        unquoted.limit_cpu(0.25)
        assert cgroups.reuse(unquoted)
        same = cgroups.create(0, 0.25)
        assert same is not None and same.dirs == first.dirs
        assert _read(quota).split()[0] in ("-1", "max")
        assert cgroups.reuse(same) and cgroups.reuse(other)
    finally:
        assert cgroups.release()  # the kept ones go with the agent's directories
    assert not [parent for parent in cgroups.parents.values() if parent.exists()]


def test_a_kept_cgroup_does_not_blame_the_next_task_for_an_earlier_oom_kill() -> None:
    cgroups = _host_cgroups(f"corral-test-{uuid.uuid4().hex[:12]}")
    try:
        killed = cgroups.create(16, 0)
        assert killed is not None
        hog = _join_and_run(killed, f"exec {sys.executable} -c 'bytearray(256 << 20)'")
        assert hog.returncode == -signal.SIGKILL or hog.returncode == 128 + signal.SIGKILL
        assert killed.oom_killed()
        assert cgroups.reuse(killed)
        after = cgroups.create(16, 0)
        assert after is not None and after.dirs == killed.dirs
        assert not after.oom_killed()
        assert _join_and_run(after, f"exec {sys.executable} -c 'bytearray(256 << 20)'").returncode
        assert after.oom_killed()  # its own kill is still seen
        assert cgroups.reuse(after)
    finally:
        assert cgroups.release()


def test_a_cgroup_holding_a_process_or_much_memory_is_not_kept(tmp_path: Path) -> None:
    cgroups = _host_cgroups(f"corral-test-{uuid.uuid4().hex[:12]}")
    busy = cgroups.create(64, 0)
    assert busy is not None
    join = "; ".join(f'echo $$ > "{procs}"' for procs in busy.procs_files())
    member = subprocess.Popen(["/bin/sh", "-c", f"{join}; echo in; exec sleep 1000"], stdout=-1)
    try:
        assert member.stdout is not None and member.stdout.readline() == b"in\n"
        assert not cgroups.reuse(busy)  # a later task would share it with this process
    finally:
        member.kill()
        member.wait()
        if member.stdout is not None:
            member.stdout.close()
    # Memory charged to it stays with it (tmpfs, here): it would count against the next task.
    shm = Path("/dev/shm") / f"corral-test-{uuid.uuid4().hex[:12]}"
    charged = cgroups.create(64, 0)
    assert charged is not None and charged.dirs != busy.dirs
    try:
        written = _join_and_run(charged, f"head -c {16 << 20} /dev/zero > {shm}")
        assert written.returncode == 0, written.stderr
        assert not cgroups.reuse(charged)
    finally:
        shm.unlink(missing_ok=True)
        charged.remove()
        busy.remove()
        assert cgroups.release()


def test_the_keeper_moves_whole_where_it_may_write_cgroup_procs_and_not_tasks() -> None:
    # A v1 subtree delegated to an agent that is not root may let it write ``cgroup.procs``
    # and not ``tasks``: the keeper must still get home (a task's kill would hit it there).
    # Root writes any cgroup file, so regular files stand in, ``tasks`` made immutable.
    chattr = shutil.which("chattr")
    if chattr is None or os.geteuid() != 0:
        reason = "needs root and chattr (apt-get install e2fsprogs)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    cgroup = Path(tempfile.mkdtemp(dir="/dev/shm"))
    tasks, procs = cgroup / "tasks", cgroup / "cgroup.procs"
    tasks.touch()
    procs.touch()
    subprocess.run([chattr, "+i", str(tasks)], check=True)
    try:
        with pytest.raises(PermissionError):
            tasks.write_text("0")
        keeper.go_home([str(tasks)])
        assert procs.read_text() == str(os.getpid())
    finally:
        subprocess.run([chattr, "-i", str(tasks)], check=True)
        shutil.rmtree(cgroup)
