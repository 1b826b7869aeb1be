"""What one agent spends per task, without a master: CPU of the agent and of the tasks' processes.

Run from the repository root: ``python bench/agent_tasks.py [--tasks 1000] [--slots 20]``. An
agent runtime in this process (process executor, cgroup limits when the host allows them, its data
dir under ``$TMPDIR``) is handed launches of ``true`` as a master would, ``--slots`` at a time,
and reports their ends to its journal; nothing is sent. Prints the CPU time per task of the agent
(user and system), of its task keeper and of the tasks' processes, and the files and
directories a task leaves.

``bench/throughput.py`` measures the whole cluster; this isolates the agent's share of it, which
varies less from run to run (no master, no WebSocket, no other agent on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corral.agent.executors.process import ProcessExecutor  # noqa: E402
from corral.agent.runtime import Agent, AgentConfig  # noqa: E402
from corral.cli import event_loop  # noqa: E402
from corral.spec.protocol import AgentResources, TaskLaunch  # noqa: E402
from corral.spec.services import HealthCheckStatus  # noqa: E402
from corral.spec.states import TaskState  # noqa: E402


class CountingAgent(Agent):
    """An agent never connected to a master; it counts the ends it reports."""

    def __init__(self, data_dir: Path) -> None:
        config = AgentConfig(
            master_urls=["http://127.0.0.1:9"],
            token=None,
            data_dir=data_dir,
            hostname="bench",
            resources=AgentResources(cpus=2, mem=4096, disk=0),
        )
        super().__init__(config, {"process": ProcessExecutor()})
        self.ended = asyncio.Queue[TaskState]()

    async def report(
        self,
        task_id: str,
        state: TaskState,
        reason: str = "",
        exit_code: int | None = None,
        ports: list[int] | None = None,
        healthy: bool | None = None,
        checks: list[HealthCheckStatus] | None = None,
    ) -> None:
        """Report as the agent does; hand ends to the benchmark."""
        await super().report(task_id, state, reason, exit_code, ports, healthy, checks)
        if state.terminal:
            self.ended.put_nowait(state)


def keepers_cpu(parent: int) -> tuple[float, float]:
    """CPU seconds of the task keepers ``parent`` started and that still run: their own, and
    their reaped children's (the tasks)."""
    own = kids = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        try:
            if b"corral.agent.keeper" not in (proc / "cmdline").read_bytes():
                continue
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            utime, stime, cutime, cstime = (int(f) / tick for f in fields[11:15])
            own, kids = own + utime + stime, kids + cutime + cstime
    return own, kids


def cpu() -> tuple[float, float, float, float]:
    """CPU seconds so far: this process's user and system time, its keeper's, and the tasks'
    (reaped children of this process or of its keeper)."""
    me, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    keeper, tasks = keepers_cpu(os.getpid())
    return me.ru_utime, me.ru_stime, keeper, tasks + kids.ru_utime + kids.ru_stime


async def run(data_dir: Path, tasks: int, slots: int) -> tuple[float, list[TaskState]]:
    """Run ``tasks`` launches of ``true``, ``slots`` at a time; seconds taken and their ends."""
    agent = CountingAgent(data_dir)
    launches = [
        TaskLaunch.model_validate(
            {"task_id": f"bench.{uuid.uuid4().hex[:8]}.{n}", "job": "bench", "command": ["true"]}
            | {"cpus": 0.1, "mem": 16}
        )
        for n in range(tasks)
    ]
    ends: list[TaskState] = []
    started = time.perf_counter()
    for launch in launches[:slots]:
        await agent.launch(launch)
    for launch in launches[slots:]:
        ends.append(await agent.ended.get())
        await agent.launch(launch)
    while len(ends) < tasks:
        ends.append(await agent.ended.get())
    took = time.perf_counter() - started
    agent.journal.close()
    for executor in agent.executors.values():
        executor.close()  # the cgroups kept for later tasks, as a stopping agent does
    return took, ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        before = cpu()
        took, ends = event_loop.run(run(data_dir, args.tasks, args.slots))
        after = cpu()
        one = next((data_dir / "tasks").iterdir())
        left = sorted(str(p.relative_to(one)) for p in one.rglob("*"))
    spent = [(a - b) / args.tasks * 1000 for a, b in zip(after, before, strict=True)]
    user, system, keeper, kids = spent
    finished = sum(state is TaskState.FINISHED for state in ends)
    print(
        f"agent: {args.tasks} tasks in {took:.2f}s = {args.tasks / took:.0f} tasks/s, "
        f"{finished} FINISHED ({args.slots} at a time)"
    )
    print(
        f"CPU per task: agent {user + system:.2f} ms (user {user:.2f}, system {system:.2f}), "
        f"its task keeper {keeper:.2f} ms, the tasks' processes {kids:.2f} ms, "
        f"total {user + system + keeper + kids:.2f} ms"
    )
    print(f"a task leaves {len(left) + 1} files and directories: {', '.join(left)}")


if __name__ == "__main__":
    main()
