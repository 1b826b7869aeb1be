"""Dependent jobs: a child runs once all its parents have succeeded since its last run."""

from __future__ import annotations

import pytest

from corral.master.policy.dependencies import JobFacts, children_of, children_to_start
from corral.master.policy.effects import SkipRun, StartRun
from corral.spec.states import RunState, TaskState
from tests.master.policy.harness import Harness

S = TaskState


def succeed(h: Harness, job: str) -> None:
    """A run of ``job`` starts and its one task finishes, ``h.now`` moving on a second each."""
    h.now += 1
    h.start_run(job, run=1 + sum(1 for j, _ in h.runs if j == job))
    h.now += 1
    h.task_ended(job, S.FINISHED, run=sum(1 for j, _ in h.runs if j == job))


def started(h: Harness) -> list[str]:
    return [e.job for e in h.effects if isinstance(e, StartRun)]


def test_a_child_starts_when_its_only_parent_succeeds() -> None:
    h = Harness()
    h.job("fetch")
    h.job("analyse", "fetch")
    succeed(h, "fetch")
    assert started(h) == ["analyse"]


def test_a_child_with_two_parents_starts_only_after_both_succeeded_since_its_last_run() -> None:
    h = Harness()
    h.job("a")
    h.job("b")
    h.job("child", "a", "b")
    succeed(h, "a")
    assert started(h) == []
    succeed(h, "b")
    assert started(h) == ["child"]
    h.task_ended("child", S.FINISHED)
    succeed(h, "a")  # b's success came before the child's last run: it no longer counts
    assert started(h) == ["child"]
    succeed(h, "b")
    assert started(h) == ["child", "child"]


def test_a_failed_parent_starts_no_child() -> None:
    h = Harness()
    h.job("fetch")
    h.job("analyse", "fetch")
    h.start_run("fetch")
    h.task_ended("fetch", S.FAILED)
    assert started(h) == []


def test_a_chain_runs_one_job_after_the_other() -> None:
    h = Harness()
    h.job("a")
    h.job("b", "a")
    h.job("c", "b")
    succeed(h, "a")
    assert started(h) == ["b"]
    h.now += 1
    h.task_ended("b", S.FINISHED)
    assert started(h) == ["b", "c"]


P = JobFacts(parents=(), last_success=10.0)


@pytest.mark.parametrize(
    ("child", "effects"),
    [
        pytest.param(
            JobFacts(parents=("p",), created_at=5.0),
            [StartRun("child", "parents p succeeded")],
            id="a child defined before its parent's success starts",
        ),
        pytest.param(
            JobFacts(parents=("p",), created_at=5.0, disabled=True),
            [],
            id="a disabled child does not start",
        ),
        pytest.param(
            JobFacts(parents=("p",), created_at=5.0, last_run_start=12.0),
            [],
            id="a child that ran since its parent's success does not start again",
        ),
        pytest.param(
            JobFacts(parents=("p",), created_at=5.0, running=True),
            [SkipRun("child", "previous run still running")],
            id="a child still running skips the firing",
        ),
        pytest.param(
            JobFacts(parents=("p",), created_at=5.0, running=True, concurrent=True),
            [StartRun("child", "parents p succeeded")],
            id="a concurrent child still running starts another run",
        ),
        pytest.param(
            JobFacts(parents=("p", "gone"), created_at=5.0),
            [],
            id="a child of a deleted parent does not start",
        ),
    ],
)
def test_which_children_start(child: JobFacts, effects: list[StartRun | SkipRun]) -> None:
    assert children_to_start("p", RunState.SUCCEEDED, {"p": P, "child": child}) == effects


def test_a_killed_run_starts_no_child() -> None:
    child = JobFacts(parents=("p",))
    assert children_to_start("p", RunState.KILLED, {"p": P, "child": child}) == []


def test_children_are_found_by_name_in_order() -> None:
    parents = {"z": ["p"], "a": ["q", "p"], "m": ["q"]}
    assert children_of("p", parents) == ["a", "z"]
