"""Same input, same plan, even across interpreters with different string hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from corral.scheduler import Constraint, Operator, Strategy
from corral.scheduler.harness import Harness

h = Harness()
for i in range(12):
    h.add_agent(f"agent-{i}", cpus=4, hostname=f"host-{i % 5}", rack="r" + "abc"[i % 3],
                zone="z" + str(i % 2))
spread = [Constraint("zone", Operator.GROUP_BY), Constraint("hostname", Operator.MAX_PER, "2")]
for owner in ("zoe", "al", "mo", "bea"):
    h.add_tasks(7, group=f"{owner}-spread", owner=owner, constraints=spread,
                strategy=Strategy.SPREAD)
    h.add_tasks(5, group=f"{owner}-pack", owner=owner, cpus=0.5,
                constraints=[Constraint("rack", Operator.CLUSTER)])
result = h.plan()
print(result.placements)
print(sorted(result.unplaced.items()))
"""


def plan_with_hash_seed(seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_plans_do_not_depend_on_the_string_hash_seed() -> None:
    outputs = {plan_with_hash_seed(seed) for seed in ("0", "1", "2")}
    assert len(outputs) == 1
    assert "Placement(" in outputs.pop()
