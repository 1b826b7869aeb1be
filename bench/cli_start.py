"""How long a CLI call takes, beside the interpreter's own start.

Run from the repository root: ``python bench/cli_start.py``. Starts a master (SQLite store, no
agent) with a few jobs in it, then runs each command 20 times, the three commands taking turns
so that a change in the machine's load falls on all of them alike, and prints the median and
p90 wall time of each, its median CPU time (user + system: the part the load does not stretch)
and its ratio to ``python3 -c pass``:

- ``python3 -c pass``: the floor, an interpreter that does nothing;
- ``corral --help``: the CLI's imports and typer;
- ``corral jobs``: the same plus one HTTP call and a table.

Two ways: with every module's bytecode cached, as an installed ``corral`` runs (a cache of the
bench's own, filled by one run of each command first), and under ``PYTHONDONTWRITEBYTECODE=1``,
as this workplace runs, where Corral's own modules (no ``__pycache__`` in the tree) are compiled
on every start.

Target (issue 14): ``corral jobs`` at most 0.35 s on the 2-core machine. Not a pass/fail test.
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

from corral.spec.jobs import JobSpec  # noqa: E402
from tests.support.cluster import CORRAL, Cluster, corral_env  # noqa: E402

RUNS = 20
JOBS = 20
TARGET = 0.35
COMMANDS = {
    "python3 -c pass": [sys.executable, "-c", "pass"],
    "corral --help": [*CORRAL, "--help"],
    "corral jobs": [*CORRAL, "jobs"],
}

Times = dict[str, tuple[list[float], list[float]]]  # command: (wall times, CPU times)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``args``, which must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def timed(env: dict[str, str]) -> Times:
    """``RUNS`` rounds of every command, in turn."""
    times: Times = {name: ([], []) for name in COMMANDS}
    for _ in range(RUNS):
        for name, args in COMMANDS.items():
            wall, cpu = run(args, env)
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def report(title: str, times: Times) -> float:
    """Print one table; return the median wall time of ``corral jobs``."""
    floor = statistics.median(times["python3 -c pass"][0])
    print(f"\n{title}")
    print(f"{'command':<18} {'median':>8} {'p90':>8} {'cpu':>8} {'× floor':>8}")
    for name, (walls, cpus) in times.items():
        median = statistics.median(walls)
        p90 = statistics.quantiles(walls, n=10)[-1]
        cpu = statistics.median(cpus)
        print(f"{name:<18} {median:>7.3f}s {p90:>7.3f}s {cpu:>7.3f}s {median / floor:>8.1f}")
    return statistics.median(times["corral jobs"][0])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_master()
        try:
            with cluster.client() as c:
                for i in range(JOBS):
                    spec = {"name": f"job{i}", "task": {"command": ["true"]}}
                    c.create_job(JobSpec.model_validate(spec))
            env = corral_env(CORRAL_URL=cluster.url, CORRAL_TOKEN=cluster.token)
            cached = env | {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
            cached.pop("PYTHONDONTWRITEBYTECODE", None)
            for args in COMMANDS.values():
                run(args, cached)  # compiles and caches everything each command imports
            uncached = env | {"PYTHONDONTWRITEBYTECODE": "1"}
            load = os.getloadavg()[0]
            with_bytecode = timed(cached)
            from_source = timed(uncached)
        finally:
            cluster.stop()
    print(f"{RUNS} runs each, {JOBS} jobs in the store, load average {load:.2f} at the start")
    installed = report("bytecode cached (as installed)", with_bytecode)
    compiled = report(
        "PYTHONDONTWRITEBYTECODE=1 (as here: Corral's own modules compiled on every start)",
        from_source,
    )
    for how, jobs in (("bytecode cached", installed), ("compiled on start", compiled)):
        verdict = "met" if jobs <= TARGET else "NOT met"
        print(f"corral jobs, {how}: {jobs:.3f} s against the {TARGET} s target: {verdict}")


if __name__ == "__main__":
    main()
