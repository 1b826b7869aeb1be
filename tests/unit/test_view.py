"""The view's task index: by job, by agent and by owner, kept right as tasks come, get placed
and go, in the order they came."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from corral.master.view import TaskIndex


@dataclass
class Task:
    id: str
    job: str
    owner: str
    agent_id: str | None = None


def ids(tasks: tuple[Task, ...]) -> list[str]:
    return [t.id for t in tasks]


def test_a_new_task_is_listed_under_its_job_and_owner_but_no_agent() -> None:
    index: TaskIndex[Task] = TaskIndex()
    index.add(Task("t1", "sweep", "alice"))
    assert ids(index.of_job("sweep")) == ["t1"]
    assert ids(index.of_owner("alice")) == ["t1"]
    assert index.agents() == ()
    assert len(index) == 1


def test_a_placed_task_is_listed_under_its_agent() -> None:
    index: TaskIndex[Task] = TaskIndex()
    task = Task("t1", "sweep", "alice")
    index.add(task)
    task.agent_id = "a1"
    index.moved(task)
    assert ids(index.on_agent("a1")) == ["t1"]
    assert ids(index.of_job("sweep")) == ["t1"]


def test_a_removed_task_leaves_every_listing_and_empty_ones_disappear() -> None:
    index: TaskIndex[Task] = TaskIndex()
    task = Task("t1", "sweep", "alice", "a1")
    index.add(task)
    index.remove(task)
    assert (index.jobs(), index.agents(), index.owners()) == ((), (), ())
    assert index.of_job("sweep") == index.on_agent("a1") == index.of_owner("alice") == ()
    assert len(index) == 0


def test_adding_a_task_twice_files_it_once_where_it_is_now() -> None:
    index: TaskIndex[Task] = TaskIndex()
    index.add(Task("t1", "sweep", "alice", "a1"))
    index.add(Task("t1", "sweep", "alice", "a2"))
    assert index.on_agent("a1") == ()
    assert ids(index.on_agent("a2")) == ["t1"]
    assert len(index) == 1


def test_removing_or_moving_a_task_not_filed_changes_nothing() -> None:
    index: TaskIndex[Task] = TaskIndex()
    index.add(Task("t1", "sweep", "alice"))
    index.remove(Task("t2", "sweep", "alice"))
    index.moved(Task("t3", "sweep", "alice", "a1"))
    assert ids(index.of_job("sweep")) == ["t1"]
    assert index.agents() == ()


def test_listings_keep_the_order_tasks_came_in_and_are_copies() -> None:
    index: TaskIndex[Task] = TaskIndex()
    for n in (3, 1, 2):
        index.add(Task(f"t{n}", "sweep", "alice"))
    listed = index.of_job("sweep")
    index.remove(Task("t1", "sweep", "alice"))
    assert ids(listed) == ["t3", "t1", "t2"]  # taken before the removal, unchanged by it
    assert ids(index.of_job("sweep")) == ["t3", "t2"]


# --- property: after any sequence of adds, placements and removals, each listing is what a
# scan of the live tasks would give, in the order the tasks came.

TASK_IDS = [f"t{i}" for i in range(8)]
operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "place", "remove"]),
        st.sampled_from(TASK_IDS),
        st.sampled_from(["j1", "j2", "/svc"]),
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(["a1", "a2"]),
    ),
    max_size=60,
)


@given(operations)
def test_the_index_always_matches_a_scan_of_the_live_tasks(
    ops: list[tuple[str, str, str, str, str]],
) -> None:
    index: TaskIndex[Task] = TaskIndex()
    live: dict[str, Task] = {}  # what ClusterState.tasks holds, in the order tasks came
    for op, tid, job, owner, agent in ops:
        if op == "add" and tid not in live:
            live[tid] = Task(tid, job, owner)
            index.add(live[tid])
        elif op == "place" and tid in live and live[tid].agent_id is None:
            live[tid].agent_id = agent
            index.moved(live[tid])
        elif op == "remove" and tid in live:
            index.remove(live.pop(tid))
    tasks = list(live.values())
    assert set(index.jobs()) == {t.job for t in tasks}
    assert set(index.owners()) == {t.owner for t in tasks}
    assert set(index.agents()) == {t.agent_id for t in tasks if t.agent_id is not None}
    for job in ("j1", "j2", "/svc"):
        assert ids(index.of_job(job)) == [t.id for t in tasks if t.job == job]
    for owner in ("alice", "bob"):
        assert ids(index.of_owner(owner)) == [t.id for t in tasks if t.owner == owner]
    for agent in ("a1", "a2"):
        on_agent = [t.id for t in tasks if t.agent_id == agent]
        assert sorted(ids(index.on_agent(agent))) == sorted(on_agent)
    assert len(index) == len(tasks)
