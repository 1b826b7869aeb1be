"""End-to-end throughput and latency of a real cluster, beside a bare baseline.

Run from the repository root: ``python bench/throughput.py``. Starts a master and two agents as
separate processes (SQLite store, process executor), then:

1. runs 1,000 trivial tasks (``true``) as one array, and times submit -> run SUCCEEDED;
2. spawns the same 1,000 ``true`` processes with 2 workers and no scheduler (the baseline);
3. repeats 1 and 2 alternately, three rounds in all (``BENCH_ROUNDS``): the speed of a shared
   host drifts by a fifth within a minute, and the median of alternated rounds moves less;
4. on the idle cluster, submits single-task jobs one at a time and measures submit -> RUNNING.

Prints tasks/s of both and their ratio, each round's and the median, the CPU time each spends
per task over all rounds (the master, the agents with their task keepers, the tasks'
processes; the bare loop and its processes), and latency percentiles. Not a pass/fail test.

``BENCH_PROFILE=DIR`` also profiles the master and the first agent during the array with
``py-spy record --gil`` (``pip install py-spy``) into ``DIR/master.txt`` and ``DIR/agent.txt``
(collapsed stacks); a profiled run's figures are not comparable to others (sampling costs).
``BENCH_TASKS=N`` runs N tasks instead of 1,000 (a longer profile).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_tasks import keepers_cpu  # noqa: E402

from corral.spec.jobs import JobSpec  # noqa: E402
from corral.spec.states import RunState  # noqa: E402
from corral.spec.views import EventView  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", "1000"))  # more for a profile with more samples
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
LATENCY_SAMPLES = 50


def cpu_of(pid: int) -> tuple[float, float]:
    """CPU seconds of a process (user + system): its own, and its reaped children's."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) / os.sysconf("SC_CLK_TCK") for f in fields[11:15])
    return utime + stime, cutime + cstime


def with_keepers(pid: int) -> tuple[float, float]:
    """``cpu_of`` a process, the task keepers it started (an agent's) counted in: their own CPU
    with the process's, their reaped children (the tasks) with its children."""
    own, kids = cpu_of(pid)
    keeper_own, keeper_kids = keepers_cpu(pid)
    return own + keeper_own, kids + keeper_kids


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children."""
    me, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def corral_array(cluster: Cluster, name: str) -> float:
    """Seconds from submitting the array ``name`` to its run's success."""
    spec = JobSpec.model_validate(
        {
            "name": name,
            "array": f"0-{TASKS - 1}",
            "task": {"command": ["true"], "cpus": 0.1, "mem": 16},
        }
    )

    def run_ended(ev: EventView) -> bool:
        if ev.type != "run_state" or ev.job != name:
            return False
        return RunState(ev.state or "").terminal

    with cluster.client() as c:
        start = time.perf_counter()
        c.create_job(spec)
        # The end is seen on the event stream the cluster follows anyway: polling the run
        # (every 20 ms, 2 ms of the master's CPU per read) added a fifth to its CPU per task.
        ended = cluster.wait_event(run_ended, 600, "the array's run to end")
        elapsed = time.perf_counter() - start
    assert ended.state == "SUCCEEDED", ended
    return elapsed


def bare_baseline() -> float:
    """Seconds to spawn the same processes with 2 workers and nothing else."""

    def one(_: int) -> None:
        subprocess.run(["true"], check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(TASKS)))
    return time.perf_counter() - start


def latencies(cluster: Cluster) -> list[float]:
    """Submit -> RUNNING of single tasks on an idle cluster, in seconds."""
    samples = []
    with cluster.client() as c:
        for i in range(LATENCY_SAMPLES):
            name = f"latency-{i}"
            spec = JobSpec.model_validate(
                {"name": name, "task": {"command": ["true"], "cpus": 0.1, "mem": 16}}
            )
            submitted = time.time()
            c.create_job(spec)
            cluster.wait_run(name, timeout=30)
            running = next(e for e in c.task(f"{name}.1.0.0").events or [] if e.state == "RUNNING")
            samples.append(running.time.timestamp() - submitted)
    return samples


@contextmanager
def profiled(pids: dict[str, int]) -> Iterator[None]:
    """With ``BENCH_PROFILE`` set, ``py-spy record`` each of ``pids`` meanwhile."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(out).mkdir(parents=True, exist_ok=True)
    recorders = [
        subprocess.Popen(
            [spy, "record", "--gil", "-r", "100", "-f", "raw", "-p", str(pid)]
            + ["-o", str(Path(out) / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        for rec in recorders:
            rec.send_signal(signal.SIGINT)  # it writes what it sampled, then exits
        for rec in recorders:
            rec.wait(timeout=60)


def rounded(rates: list[float]) -> str:
    """Rates of the rounds, in order, and their median."""
    return f"{' '.join(f'{r:.0f}' for r in rates)} (median {statistics.median(rates):.0f})"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Runs' states are all it waits for: it follows those, as `corral run --wait` follows
        # its job's, not every task's every state (which cost the master and this process
        # 0.1-0.2 ms a task each).
        cluster = Cluster(Path(tmp), event_types=("run_state",))
        cluster.start_master()
        try:
            cluster.add_agent("bench-1", cpus=2, mem=4096)
            cluster.add_agent("bench-2", cpus=2, mem=4096)
            procs = {"master": cluster.master, **cluster.agents}
            pids = {name: proc.popen.pid for name, proc in procs.items() if proc and proc.popen}
            before = {name: with_keepers(pid) for name, pid in pids.items()}
            corral_s, base_s, base_cpu = [], [], 0.0
            with profiled({"master": pids["master"], "agent": pids["bench-1"]}):
                for r in range(ROUNDS):
                    corral_s.append(corral_array(cluster, f"throughput-{r}"))
                    spent_before = own_cpu()
                    base_s.append(bare_baseline())
                    base_cpu += own_cpu() - spent_before
            after = {name: with_keepers(pid) for name, pid in pids.items()}
            lat = latencies(cluster)
        finally:
            cluster.stop()
    corral_rates = [TASKS / s for s in corral_s]
    base_rates = [TASKS / s for s in base_s]
    ratios = [c / b for c, b in zip(corral_rates, base_rates, strict=True)]
    print(
        f"corral: {TASKS} tasks per round, tasks/s {rounded(corral_rates)} "
        "(master + 2 agents, 20 slots each)"
    )
    print(f"bare:   {TASKS} processes per round, tasks/s {rounded(base_rates)} (2 workers)")
    print(
        f"ratio corral/bare: {statistics.median(ratios):.2f} median of "
        f"{' '.join(f'{r:.2f}' for r in ratios)} (target >= 0.33)"
    )
    done = TASKS * ROUNDS
    spent = {name: [a - b for a, b in zip(after[name], before[name], strict=True)] for name in pids}
    master_ms = spent.pop("master")[0] / done * 1000
    agents_ms = sum(own for own, _ in spent.values()) / done * 1000
    tasks_ms = sum(kids for _, kids in spent.values()) / done * 1000
    print(
        f"CPU per task: master {master_ms:.2f} ms, agents (and keepers) {agents_ms:.2f} ms, "
        f"the tasks' processes {tasks_ms:.2f} ms, total {master_ms + agents_ms + tasks_ms:.2f} ms; "
        f"bare: {base_cpu / done * 1000:.2f} ms per process (its loop and the process)"
    )
    print(
        f"submit->RUNNING latency over {len(lat)} single tasks: "
        f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms, "
        f"mean {statistics.mean(lat) * 1000:.1f} ms (target p50 <= 20 ms)"
    )


if __name__ == "__main__":
    main()
