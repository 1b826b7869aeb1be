"""Failover on a real cluster: how long the tasks of a killed agent are gone, and how long a
cluster of three masters accepts no writes after its leader is killed.

Run from the repository root: ``python bench/failover.py`` (``--leader-kills 0`` for the agent
case only). Starts a master and 4 agents as
separate processes (default settings: heartbeat 1 s, an agent silent for 10 s is LOST), deploys
a service of 6 ``sleep 3600`` tasks spread over them, then 5 times:

1. picks the agent running the most tasks of the service and kills it with SIGKILL (its tasks'
   processes keep running, as on a node cut off from the network);
2. measures the time from the kill until every one of its tasks is RUNNING again on another agent,
   split into detecting the loss (kill -> the tasks marked LOST) and re-placing (LOST -> the last
   replacement RUNNING), from the master's event times;
3. restarts the agent (same id and data dir), waits until it has stopped the replaced tasks and
   the service is back at 6 RUNNING tasks with no deployment under way.

Prints each figure and their p50 and max against the target of 10 s.

The leader case: a PostgreSQL of its own (as the tests start it), 3 masters on it with default
settings (lease 2 s), 2 agents given every master's URL and a service of 4 ``sleep 3600``
tasks; then ``--leader-kills`` times (20): kill the leader with SIGKILL, time the kill until a
client given every master's URL has a write (a job's creation) accepted, start the killed master
again (it follows). Prints p50 and max against the target of 3 s, and the service's tasks
disturbed (not the ones it started with at the end). Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corral.agent import task_record  # noqa: E402
from corral.client import ApiError, Client, ClientError  # noqa: E402
from corral.spec.jobs import JobSpec  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.ha import HaCluster  # noqa: E402
from tests.support.postgres import remove_server, start_server  # noqa: E402
from tests.support.services import create, running, settled  # noqa: E402

SERVICE = "/failover"
TARGET = 10.0


@dataclass
class Round:
    """One kill: seconds from the kill to the loss being noticed, and to all tasks back."""

    agent: str
    tasks: int
    detect: float
    total: float

    @property
    def replace(self) -> float:
        return self.total - self.detect


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def entered(cluster: Cluster, task_id: str, state: str) -> float:
    """When a task entered ``state``, by the master's record of its history."""
    with cluster.client() as c:
        for e in c.task(task_id).events or []:
            if e.state.value == state:
                return e.time.timestamp()
    raise LookupError(f"no {state} event of {task_id}")


def one_round(cluster: Cluster, api: Client, instances: int, lost_after: float) -> Round:
    """Kill the busiest agent, time the failover, bring the agent back and let things settle."""
    before = api.service_tasks(SERVICE)
    per_host: dict[str, list[str]] = {}
    for t in before:
        per_host.setdefault(t.hostname or "", []).append(t.id)
    victim = max(sorted(per_host), key=lambda h: len(per_host[h]))
    doomed = per_host[victim]
    before_ids = {t.id for t in before}

    killed_at = time.time()
    cluster.agents[victim].signal(signal.SIGKILL)

    def back() -> list[str] | None:
        tasks = running(api.service_tasks(SERVICE))
        fresh = [t.id for t in tasks if t.id not in before_ids]
        if len(tasks) == instances and len(fresh) == len(doomed):
            assert all(t.hostname != victim for t in tasks)
            return fresh
        return None

    fresh = cluster.wait_until(back, lost_after + 60, f"the tasks of {victim} to run elsewhere")
    lost = min(entered(cluster, tid, "LOST") for tid in doomed)
    restored = max(entered(cluster, tid, "RUNNING") for tid in fresh)

    # The agent returns still running the replaced tasks: they must be stopped there.
    cluster.start_agent(victim)
    roots = [cluster.root / "agents" / victim / "tasks" / tid for tid in doomed]
    cluster.wait_until(
        lambda: all(task_record.read(root).ended for root in roots),
        60,
        "the replaced tasks to stop",
    )
    cluster.wait_until(lambda: settled(api, SERVICE, instances), 60, "the service to settle")
    return Round(victim, len(doomed), lost - killed_at, restored - killed_at)


STEADY = "/steady"
STEADY_INSTANCES = 4
LEADER_TARGET = 3.0


@dataclass
class LeaderKills:
    """Seconds from each kill until a write succeeded, and the service's tasks disturbed."""

    writes_back: list[float]
    disturbed: int
    instances: int


def write_back(url: str, token: str, name: str, deadline: float) -> float:
    """Try to create a job until it is accepted; answers when it was."""
    spec = JobSpec.model_validate({"name": name, "task": {"command": ["true"], "cpus": 0.1}})
    with Client(url, token, timeout=2) as api:
        while time.monotonic() < deadline:
            try:
                api.create_job(spec)
                return time.monotonic()
            except (ApiError, ClientError):
                time.sleep(0.01)
    raise AssertionError(f"no write accepted for {name}")


def leader_kills(kills: int) -> LeaderKills:
    """Kill the leader of three masters ``kills`` times; answers the figures."""
    server = start_server()
    if server is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    times: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cluster = HaCluster(Path(tmp), db=server.url(server.new_database()))
            cluster.start_master()
            try:
                cluster.add_agents(["a1", "a2"])
                with cluster.client() as api:
                    task = {"command": ["sleep", "3600"], "cpus": 0.1, "mem": 16}
                    create(api, {"id": STEADY, "instances": STEADY_INSTANCES, "task": task})
                    started = cluster.wait_until(
                        lambda: settled(api, STEADY, STEADY_INSTANCES), 60, "the service to start"
                    )
                before = {t.id for t in started}
                leader = cluster.leader_name
                for i in range(kills):
                    killed = time.monotonic()
                    cluster.procs[leader].signal(signal.SIGKILL)
                    back = write_back(cluster.url, cluster.token, f"after-{i}", killed + 60)
                    times.append(back - killed)
                    print(f"leader kill {i + 1}: writes accepted again after {times[-1]:.2f}s")
                    new = cluster.wait_for_leader(30, other_than=leader)
                    cluster.procs[leader].start()
                    cluster.wait_answers(leader)
                    leader = new
                with cluster.client() as api:
                    now = cluster.wait_until(
                        lambda: settled(api, STEADY, STEADY_INSTANCES), 60, "the service to settle"
                    )
                disturbed = len(before - {t.id for t in now})
            finally:
                cluster.stop()
    finally:
        remove_server(server)
    return LeaderKills(times, disturbed, STEADY_INSTANCES)


def main() -> None:
    parser = argparse.ArgumentParser(description="Time service failover on a real cluster.")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--instances", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--lost-after", type=float, default=8.0, help="the master's setting (its default)"
    )
    parser.add_argument(
        "--leader-kills", type=int, default=20, help="kills of the leader of 3 masters (0: none)"
    )
    args = parser.parse_args()
    leader = leader_kills(args.leader_kills) if args.leader_kills else None

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), lost_after=args.lost_after)
        cluster.start_master()
        try:
            cluster.add_agents([f"node-{i}" for i in range(1, args.agents + 1)])
            with cluster.client() as api:
                create(
                    api,
                    {
                        "id": SERVICE,
                        "instances": args.instances,
                        "task": {"command": ["sleep", "3600"], "cpus": 0.1, "mem": 32},
                    },
                )
                cluster.wait_until(
                    lambda: settled(api, SERVICE, args.instances), 60, "the service to start"
                )
                for i in range(args.rounds):
                    r = one_round(cluster, api, args.instances, args.lost_after)
                    rounds.append(r)
                    print(
                        f"round {i + 1}: killed {r.agent} ({r.tasks} tasks): all RUNNING again "
                        f"after {r.total:.2f}s = detect {r.detect:.2f}s + re-place "
                        f"{r.replace:.2f}s",
                        flush=True,
                    )
        finally:
            for name, proc in cluster.agents.items():
                if not proc.running:  # killed in a round that failed: it must stop its tasks
                    with contextlib.suppress(AssertionError):
                        cluster.start_agent(name)
            cluster.stop()

    totals = [r.total for r in rounds]
    detects = [r.detect for r in rounds]
    replaces = [r.replace for r in rounds]
    print(
        f"failover over {len(rounds)} agent kills ({args.agents} agents, {args.instances} "
        f"tasks, heartbeat 1s, lost after {args.lost_after:g}s):"
    )
    print(
        f"  kill -> all RUNNING elsewhere: p50 {percentile(totals, 50):.2f}s, "
        f"max {max(totals):.2f}s (target <= {TARGET:g}s)"
    )
    print(
        f"  of which detecting the loss:   p50 {percentile(detects, 50):.2f}s, "
        f"max {max(detects):.2f}s"
    )
    print(
        f"  and re-placing and starting:   p50 {percentile(replaces, 50) * 1000:.0f} ms, "
        f"max {max(replaces) * 1000:.0f} ms"
    )
    if leader is not None:
        w = leader.writes_back
        print(
            f"failover over {len(w)} leader kills (3 masters on PostgreSQL, lease 2s, 2 agents, "
            f"a service of {leader.instances} tasks):"
        )
        print(
            f"  kill -> a write accepted again: p50 {percentile(w, 50):.2f}s, max {max(w):.2f}s "
            f"(target <= {LEADER_TARGET:g}s); tasks disturbed: {leader.disturbed}"
        )


if __name__ == "__main__":
    main()
