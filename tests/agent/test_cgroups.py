"""Cgroup detection, limits and bookkeeping: parsers in memory, then the host's real cgroups."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corral.agent.cgroups import (
    Cgroups,
    Hierarchy,
    TaskCgroup,
    cgroup_dir_name,
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


def test_v2_oom_kills_come_from_memory_events() -> None:
    assert oom_killed_v2("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert not oom_killed_v2("low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n")


def test_task_ids_become_safe_directory_names() -> None:
    assert cgroup_dir_name("web.abc-1_2") == "web.abc-1_2"
    assert cgroup_dir_name("a/b c") == "a_b_c"
    assert cgroup_dir_name("..") == "_.."


def test_a_task_cgroup_record_round_trips_and_rejects_garbage() -> None:
    cgroup = TaskCgroup(1, (Path("/m/t"), Path("/c/t")), Path("/m/t"), 64)
    assert TaskCgroup.load(cgroup.dump()) == cgroup
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
    cgroup = cgroups.create(f"test-{uuid.uuid4().hex[:12]}", 64, 0.5)
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

    async def scenario() -> None:
        executor = ProcessExecutor(cgroups=cgroups, port_pool=PortPool(*free_range(2)))
        agent = RecordingAgent(tmp_path, {"process": executor})
        try:
            await agent.launch(task)
            await agent.update(task.task_id, lambda u: u.state == TaskState.RUNNING, "RUNNING")
            assert not cgroups.release()  # the running task's cgroup is there: kept
            assert all((parent / task.task_id).is_dir() for parent in parents)
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
    cgroup = cgroups.create(f"test-{uuid.uuid4().hex[:12]}", 64, 0)
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
