"""Preemption on a real cluster (a master and an agent as processes, the process driver):
alice's sweep fills the agent; bob, below his fair share, submits one task. With preemption
on, his task runs within the threshold and one scheduling pass: one of alice's tasks is
killed, saying who preempted it and why, requeued, and finishes later exactly once (each
task appends its index to a file when it is done; the file is counted). With preemption off,
nothing is evicted and bob waits for a free slot."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.client import Client
from corral.spec.accounts import UserSpec
from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from tests.support.cluster import Cluster, running_cluster, shell_wait_for

pytestmark = pytest.mark.integration

THRESHOLD = 2.0  # --preempt-after, in seconds: the behaviour, not the default (60 s)
PASS = 3.0  # one scheduling pass, the victim's SIGTERM and the launch of bob's task, at most


def preemption_cluster(
    tmp_path: Path, request: pytest.FixtureRequest, on: bool
) -> Iterator[Cluster]:
    args = ["--preemption", "--preempt-after", f"{THRESHOLD:g}"] if on else []
    with running_cluster(Cluster(tmp_path, master_args=args), request) as c:
        c.add_agent("node", cpus=2, mem=2048)
        with c.client() as admin:
            for name in ("alice", "bob"):
                admin.accounts.add_user(UserSpec(name=name))
        yield c


@pytest.fixture
def preempting(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster whose master preempts after THRESHOLD seconds."""
    yield from preemption_cluster(tmp_path, request, on=True)


@pytest.fixture
def not_preempting(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster whose master runs as by default: no preemption."""
    yield from preemption_cluster(tmp_path, request, on=False)


def fill_with_alices_sweep(c: Cluster, api: Client, gate: Path, done: Path) -> None:
    """alice's 4 tasks of 1 cpu: 2 run (the agent has 2 cpus), 2 wait. Each waits for the
    gate, then appends its index to ``done``. No retries: only a requeue can rerun one."""
    shell = f"{shell_wait_for(gate)}; echo $CORRAL_ARRAY_INDEX >> {done}"
    sweep = {"shell": shell, "cpus": 1, "mem": 64}
    api.create_job(
        JobSpec.model_validate(
            {"name": "sweep", "owner": "alice", "array": "0-3", "retries": 0, "task": sweep}
        )
    )
    c.wait_count("sweep", "RUNNING", 2)


def submit_bobs(api: Client, done: Path) -> None:
    task = {"shell": f"echo bob >> {done}", "cpus": 1, "mem": 64}
    api.create_job(JobSpec.model_validate({"name": "urgent", "owner": "bob", "task": task}))


def sweep_tasks(api: Client) -> list[TaskView]:
    return [t for t in api.tasks(job="sweep")]


def test_a_starved_users_task_runs_within_the_threshold_and_the_victim_finishes_once(
    preempting: Cluster, tmp_path: Path
) -> None:
    c, gate, done = preempting, tmp_path / "go", tmp_path / "done.txt"
    with c.client() as api:
        fill_with_alices_sweep(c, api, gate, done)
        submit_bobs(api, done)
        bobs = c.wait_task("urgent.1.0.0", "FINISHED", timeout=THRESHOLD + 30)
        assert bobs.started_at is not None
        waited = (bobs.started_at - bobs.created_at).total_seconds()
        print(f"bob's task waited {waited:.2f} s (threshold {THRESHOLD:g} s)")
        assert THRESHOLD <= waited <= THRESHOLD + PASS

        (victim,) = [t for t in sweep_tasks(api) if t.attempt == 0 and t.state.value == "KILLED"]
        history = api.task(victim.id).events or []
        why = "preempted by task urgent.1.0.0 of user bob: bob below share, waited"
        assert why in history[-1].reason and history[-1].state.value == "KILLED"
        (event,) = [e for e in c.events() if e.type == "task_preempted"]
        assert event.task_id == victim.id and event.reason.startswith(why)
        assert event.data == {"by": "urgent.1.0.0", "by_owner": "bob"}
        assert victim.preempted_by == "urgent.1.0.0"
        requeued = api.task(f"sweep.1.{victim.slot}.1")
        assert (requeued.events or [])[0].reason.startswith("requeued after preemption")
        assert (requeued.requeues, requeued.preempted_by) == (1, None)

        gate.touch()
        assert c.wait_run("sweep", timeout=60) == "SUCCEEDED"
        assert api.task(requeued.id).state.value == "FINISHED"
    lines = done.read_text().split()
    print(f"done.txt: {sorted(lines)}")
    assert Counter(lines) == {"0": 1, "1": 1, "2": 1, "3": 1, "bob": 1}
    with c.client() as api:
        usage = {r.name: r.tasks for r in api.usage().rows}
    assert usage["alice"]["preempted"] == 1 and usage["alice"]["finished"] == 4


def test_with_preemption_off_nothing_is_evicted(not_preempting: Cluster, tmp_path: Path) -> None:
    c, gate, done = not_preempting, tmp_path / "go", tmp_path / "done.txt"
    with c.client() as api:
        fill_with_alices_sweep(c, api, gate, done)
        submit_bobs(api, done)
        started = time.monotonic()
        # Nothing may happen: wait past the threshold and a pass for an eviction that must
        # not come.
        with pytest.raises(AssertionError, match="timed out"):
            c.wait_until(
                lambda: [e for e in c.events() if e.type in ("task_preempted", "task_stopped")],
                THRESHOLD + PASS,
                "an eviction",
            )
        assert time.monotonic() - started >= THRESHOLD + PASS
        assert api.task("urgent.1.0.0").state.value == "PENDING"
        assert [t.state.value for t in sweep_tasks(api)].count("RUNNING") == 2

        gate.touch()
        assert c.wait_run("sweep", timeout=60) == "SUCCEEDED"
        assert c.wait_run("urgent", timeout=60) == "SUCCEEDED"
        assert {t.attempt for t in sweep_tasks(api)} == {0}
    assert Counter(done.read_text().split()) == {"0": 1, "1": 1, "2": 1, "3": 1, "bob": 1}
