"""Time from submit to all ranks running: gangs beside the same number of independent tasks.

Run from the repository root: ``python bench/gang.py``. Starts a master and 8 agents as separate
processes on this machine (SQLite store, process executor, 4 cpus each), then for 2, 8 and 32
ranks (2 × 1, 8 × 1 and 8 × 4 nodes × tasks per node) submits, ``ROUNDS`` times each:

- a gang job (rank 0 runs ``sleep``, the other ranks wait, as for mpirun), and
- an array of as many independent tasks running ``sleep``,

and measures submit → the last task RUNNING (the agents' RUNNING times). Each run is killed
before the next. Prints the median and the slowest of each, and their ratio. Not a pass/fail
test.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corral.spec.jobs import JobSpec  # noqa: E402
from corral.spec.states import TaskState  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

AGENTS = 8
CPUS = 4
SHAPES = {2: (2, 1), 8: (8, 1), 32: (8, 4)}  # ranks -> (nodes, tasks per node)
ROUNDS = 5
TASK = {"command": ["sleep", "600"], "cpus": 1, "mem": 32}


def all_running(cluster: Cluster, spec: dict[str, Any], size: int) -> float:
    """Seconds from submitting ``spec`` to its ``size`` tasks RUNNING; then kills it."""
    name = spec["name"]
    with cluster.client() as c:
        submitted = time.time()
        c.create_job(JobSpec.model_validate(spec))

        def running() -> bool:
            return c.run(name, 1).counts.get(TaskState.RUNNING, 0) == size

        cluster.wait_until(running, 120, f"{size} tasks of {name} RUNNING")
        started = [t.started_at.timestamp() for t in c.tasks(job=name) if t.started_at]
        c.kill_job(name)
    cluster.wait_run(name, timeout=120)
    return max(started) - submitted


def measure(cluster: Cluster) -> dict[int, tuple[list[float], list[float]]]:
    """Per size: the gang's times and the independent tasks' times."""
    found: dict[int, tuple[list[float], list[float]]] = {}
    for size, (nodes, per_node) in SHAPES.items():
        gangs, arrays = [], []
        for i in range(ROUNDS):
            gang = {"name": f"gang-{size}-{i}", "nodes": nodes, "task": TASK}
            if per_node > 1:
                gang["tasks_per_node"] = per_node
            gangs.append(all_running(cluster, gang, size))
            array = {"name": f"array-{size}-{i}", "array": f"0-{size - 1}", "task": TASK}
            arrays.append(all_running(cluster, array, size))
        found[size] = gangs, arrays
    return found


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_master()
        try:
            cluster.add_agents([f"node-{i}" for i in range(AGENTS)], cpus=CPUS)
            results = measure(cluster)
        finally:
            cluster.stop()
    print(f"submit -> all ranks RUNNING, {AGENTS} agents on this machine, {ROUNDS} rounds")
    print(
        f"{'ranks':>5}  {'gang median':>11}  {'gang max':>8}  {'tasks median':>12}  "
        f"{'tasks max':>9}  {'gang/tasks':>10}"
    )
    for size, (gangs, arrays) in results.items():
        gm, am = statistics.median(gangs), statistics.median(arrays)
        print(
            f"{size:>5}  {gm * 1000:>9.0f}ms  {max(gangs) * 1000:>6.0f}ms  "
            f"{am * 1000:>10.0f}ms  {max(arrays) * 1000:>7.0f}ms  {gm / am:>10.2f}"
        )


if __name__ == "__main__":
    main()
