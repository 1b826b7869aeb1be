"""Fair share and quotas on a real cluster (a master, two agents, the process driver).

The issue's shape, scaled down in time only: 16 one-cpu slots; tasks of TASK seconds. A fills
the cluster with 400 tasks, then (half a task duration later, the issue's "30 s later" scaled
to the tasks' length) B submits 400: B holds half the cluster within one task duration. With
weights 2:1 the cluster is shared 2:1. A user at quota never holds more than it allows. Each
test prints its time series of who holds what (sampled on every event).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corral.client import Client
from corral.spec.accounts import UserChange, UserSpec
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.support.cluster import Cluster

SLOTS = 16  # two agents of 8 cpus, tasks of one cpu
TASK = 3.0  # seconds each task runs
TOLERANCE = 0.10  # of the cluster: the issue's ± 10%


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the second user submitted
    running: dict[str, int]  # tasks holding a slot (placed or running), per user


def start(cluster: Cluster, users: Sequence[str]) -> Client:
    """Two agents of 8 cpus and the users; answers an admin client."""
    cluster.add_agents(["a1", "a2"], cpus=8, mem=4096)
    client = cluster.client()
    for user in users:
        client.accounts.add_user(UserSpec(name=user))
    return client


def submit(client: Client, user: str, n: int = 400, seconds: float = TASK) -> None:
    """A job array of ``n`` one-cpu tasks of ``user`` (an admin submits on their behalf)."""
    spec = JobSpec.model_validate(
        {
            "name": f"{user}-sweep",
            "owner": user,
            "array": f"0-{n - 1}",
            "task": {"shell": f"sleep {seconds}", "cpus": 1, "mem": 16},
            "retries": 0,
        }
    )
    client.create_job(spec)


def running_tasks(client: Client, job: str) -> int:
    """Tasks of a job's first run that have started (not only been placed)."""
    return client.run(job, 1).counts.get(TaskState.RUNNING, 0)


def running(client: Client) -> dict[str, int]:
    return {u.user: u.running for u in client.accounts.share().users}


class Recorder:
    """Samples who holds what on every event, from ``since``."""

    def __init__(self, cluster: Cluster, client: Client, since: float) -> None:
        self.cluster, self.client, self.since = cluster, client, since
        self.samples: list[Sample] = []

    def until(self, done: Callable[[list[Sample]], bool], timeout: float, what: str) -> None:
        """Sample on every event until ``done(samples)`` holds."""

        def check() -> bool:
            now = time.monotonic()
            self.samples.append(Sample(now - self.since, running(self.client)))
            return done(self.samples)

        self.cluster.wait_until(check, timeout, what)

    def print(self, users: Sequence[str]) -> None:
        print("\n   t (s)  " + "  ".join(f"{u:>6}" for u in users) + f"  (of {SLOTS} slots)")
        for s in self.samples:
            print(f"{s.at:8.2f}  " + "  ".join(f"{s.running.get(u, 0):6d}" for u in users))


def share_of(sample: Sample, user: str) -> float:
    return sample.running.get(user, 0) / SLOTS


def mean_share(samples: Sequence[Sample], user: str, start: float) -> float:
    """``user``'s share of the cluster from ``start`` on, averaged over time: a sample holds
    until the next. (Samples are taken on events, so they crowd where tasks end and start;
    a plain mean of them weighs those few milliseconds as much as the seconds between.)"""
    spans = [(a, b) for a, b in zip(samples, samples[1:], strict=False) if a.at >= start]
    total = sum(b.at - a.at for a, b in spans)
    return sum(share_of(a, user) * (b.at - a.at) for a, b in spans) / total


def test_a_user_arriving_on_a_full_cluster_holds_half_of_it_within_one_task_duration(
    cluster: Cluster,
) -> None:
    with start(cluster, ["alice", "bob"]) as client:
        submit(client, "alice")
        full = Recorder(cluster, client, time.monotonic())
        full.until(lambda s: running_tasks(client, "alice-sweep") == SLOTS, 60, "alice to run 16")
        # The "30 s later", scaled: bob arrives while alice's tasks are half done.
        since = full.samples[-1].at
        full.until(lambda s: s[-1].at >= since + TASK / 2, 60, "half a task duration")
        submit(client, "bob")
        rec = Recorder(cluster, client, time.monotonic())
        rec.until(
            lambda s: abs(share_of(s[-1], "bob") - 0.5) <= TOLERANCE,
            60,
            "bob to hold half the cluster",
        )
        reached = rec.samples[-1].at
        # Then they share it: sample over two more task durations.
        rec.until(lambda s: s[-1].at >= reached + 2 * TASK, 60, "two more task durations")
        rec.print(["alice", "bob"])
        print(f"bob held half the cluster {reached:.2f} s after submitting (a task: {TASK} s)")
        assert reached <= TASK
        mean = mean_share(rec.samples, "bob", reached + TASK)
        assert abs(mean - 0.5) <= TOLERANCE, mean
        assert all(sum(s.running.values()) <= SLOTS for s in rec.samples)


def test_with_weights_two_to_one_the_cluster_is_shared_two_to_one(cluster: Cluster) -> None:
    with start(cluster, ["carol", "dave"]) as client:
        client.accounts.change_user("carol", UserChange(weight=2))
        submit(client, "dave")
        full = Recorder(cluster, client, time.monotonic())
        full.until(lambda s: s[-1].running.get("dave") == SLOTS, 60, "dave to fill the cluster")
        submit(client, "carol")
        rec = Recorder(cluster, client, time.monotonic())
        rec.until(lambda s: s[-1].at >= 4 * TASK, 90, "four task durations")
        rec.print(["carol", "dave"])
        mean = mean_share(rec.samples, "carol", 2 * TASK)  # converged after two
        print(f"carol's mean share after {2 * TASK:g} s: {mean:.3f} (2:1 is 0.667)")
        assert abs(mean - 2 / 3) <= TOLERANCE, mean
        report = {u.user: u for u in client.accounts.share().users}
        assert report["carol"].weight == 2.0 and report["carol"].usage.cpu_hours > 0


def test_a_user_at_quota_never_holds_more_than_it_allows(cluster: Cluster) -> None:
    with start(cluster, ["erin", "frank"]) as client:
        client.accounts.change_user("erin", UserChange(quota_cpus=5))
        submit(client, "erin", n=15, seconds=1.5)
        submit(client, "frank", n=30, seconds=1.5)
        rec = Recorder(cluster, client, time.monotonic())
        reasons: set[str] = set()

        def ended(samples: list[Sample]) -> bool:
            waiting = client.tasks(state=TaskState.PENDING, job="erin-sweep", limit=1)
            reasons.update(t.waiting for t in waiting if t.waiting)
            return client.run("erin-sweep", 1).state.terminal

        rec.until(ended, 120, "erin's sweep to end")
        rec.print(["erin", "frank"])
        assert max(s.running.get("erin", 0) for s in rec.samples) == 5
        assert all(s.running.get("erin", 0) <= 5 for s in rec.samples)
        assert max(s.running.get("frank", 0) for s in rec.samples) == SLOTS - 5  # the rest
        assert "quota: user erin at 5/5 cpus" in reasons, reasons
        assert client.run("erin-sweep", 1).state.value == "SUCCEEDED"
