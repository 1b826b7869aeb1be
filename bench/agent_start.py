"""What an agent costs its node at start: memory, time to join, and the server it no longer loads.

Run from the repository root: ``python bench/agent_start.py``. Starts a master (SQLite store),
then starts and stops ``corral agent`` ``RUNS`` times and prints the median time from its start
until the master sees it ACTIVE, its CPU time and its resident memory (RSS) at that moment.

Beside it, in fresh interpreters with every module's bytecode cached (as an installed ``corral``
runs), the imports alone: ``python3 -c pass`` (the floor), the agent's command path, and the same
plus the master's server stack (uvicorn, FastAPI, SQLAlchemy, the store), which every agent
loaded before issue 19. Figures, not a test.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import Cluster, corral_env  # noqa: E402

RUNS = 5
IMPORTS = 10
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
PROBES = {
    "python3 -c pass": "pass",
    "agent's imports": "import corral.cli.main, corral.cli.agent_serving",
    "+ server stack": "import corral.cli.main, corral.cli.agent_serving, corral.cli.serving",
}


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def agent_runs(cluster: Cluster) -> tuple[list[float], list[float], list[float]]:
    """Start and stop one agent ``RUNS`` times: its seconds to ACTIVE, CPU seconds and MiB."""
    cluster.add_agent("a", cpus=1, mem=512)
    proc = cluster.agents["a"]
    walls, cpus, rss = [], [], []
    for _ in range(RUNS):
        proc.signal(15)
        start = time.perf_counter()
        cluster.start_agent("a")
        walls.append(time.perf_counter() - start)
        assert proc.popen is not None
        cpus.append(cpu_seconds(proc.popen.pid))
        rss.append(rss_mib(proc.popen.pid))
    return walls, cpus, rss


def imported(code: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and resident MiB after it of a fresh interpreter running
    ``code``. (Not ru_maxrss: a child's counts the parent's pages it was forked with.)"""
    rss = "print(open('/proc/self/statm').read().split()[1])"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{rss}"], env=env, check=True, capture_output=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, int(done.stdout) * PAGE / 2**20


Imports = dict[str, tuple[list[float], list[float], list[float]]]  # wall, CPU, MiB


def import_runs(env: dict[str, str]) -> Imports:
    """``IMPORTS`` rounds of every probe, in turn, so a change in load falls on all alike."""
    runs: Imports = {name: ([], [], []) for name in PROBES}
    for _ in range(IMPORTS):
        for name, code in PROBES.items():
            for figures, figure in zip(runs[name], imported(code, env), strict=True):
                figures.append(figure)
    return runs


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = corral_env(PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for code in PROBES.values():
            imported(code, env)  # compiles and caches every module once
        load = os.getloadavg()[0]
        imports = import_runs(env)
        cluster = Cluster(Path(tmp) / "cluster")
        cluster.start_master()
        try:
            walls, cpus, rss = agent_runs(cluster)
        finally:
            cluster.stop()
    print(f"load average {load:.2f} at the start")
    print(f"\ncorral agent, {RUNS} starts (as this workplace runs: no bytecode cache)")
    print(
        f"to ACTIVE: median {statistics.median(walls):.3f}s; "
        f"CPU by then {statistics.median(cpus):.3f}s; RSS {statistics.median(rss):.1f} MiB"
    )
    print(f"\nimports alone, {IMPORTS} runs each, bytecode cached")
    print(f"{'':<18} {'median':>8} {'cpu':>8} {'RSS':>10}")
    for name, (w, c, peak) in imports.items():
        print(
            f"{name:<18} {statistics.median(w):>7.3f}s {statistics.median(c):>7.3f}s "
            f"{statistics.median(peak):>6.1f} MiB"
        )


if __name__ == "__main__":
    main()
