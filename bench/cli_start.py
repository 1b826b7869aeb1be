"""How long a CLI call takes, beside the interpreter's own start.

Run from the repository root: ``python bench/cli_start.py``. Starts a master (SQLite store, no
agent) with a few jobs in it, then runs each command 20 times, one after another, and prints the
median and p90 wall time of each and its ratio to ``python3 -c pass``:

- ``python3 -c pass``: the floor, an interpreter that does nothing;
- ``corral --help``: the CLI's imports and typer;
- ``corral jobs``: the same plus one HTTP call and a table.

Target (issue 14): ``corral jobs`` at most 0.35 s on the 2-core machine. Not a pass/fail test.
"""

from __future__ import annotations

import os
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


def timed(args: list[str], env: dict[str, str]) -> list[float]:
    """Wall times of ``RUNS`` runs of ``args``; each must exit 0."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


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
            env["PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
            rows = [
                ("python3 -c pass", timed([sys.executable, "-c", "pass"], env)),
                ("corral --help", timed([*CORRAL, "--help"], env)),
                ("corral jobs", timed([*CORRAL, "jobs"], env)),
            ]
        finally:
            cluster.stop()
    floor = statistics.median(rows[0][1])
    print(f"{RUNS} runs each, {JOBS} jobs in the store")
    print(f"{'command':<18} {'median':>8} {'p90':>8} {'× floor':>8}")
    for name, times in rows:
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<18} {median:>7.3f}s {p90:>7.3f}s {median / floor:>8.1f}")
    jobs = statistics.median(rows[2][1])
    verdict = "met" if jobs <= 0.35 else "NOT met"
    print(f"corral jobs: {jobs:.3f} s against the 0.35 s target: {verdict}")


if __name__ == "__main__":
    main()
