"""The waiting room against a plain model: after any sequence of tasks coming (runs of several
jobs and priorities, some in a backoff), leaving and coming again, a pass takes from each
cohort exactly the first ``room_for + 1`` ready members in their owner's order, as a sort of
every waiting task would, and says which cohorts it cut."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from corral.master.records import LiveTask
from corral.master.waiting import WaitingRoom, key_of
from corral.master.work import run_tasks
from corral.scheduler.harness import Harness
from corral.spec.jobs import JobSpec

NOW = 1_000.0


@dataclass
class Come:
    """A new run of ``job`` with ``size`` tasks of ``priority``, waiting until ``not_before``."""

    job: int
    size: int
    priority: int
    not_before: float | None


@dataclass
class Leave:
    """The ``nth`` waiting task (modulo their number) is placed or ends."""

    nth: int


@dataclass
class Reload:
    """Every waiting task is added again as a new record (a master loading its state)."""


@dataclass
class Model:
    runs: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, LiveTask] = field(default_factory=dict)


ops = st.lists(
    st.one_of(
        st.builds(
            Come,
            st.integers(0, 2),
            st.integers(1, 6),
            st.integers(-1, 1),
            st.sampled_from([None, NOW - 5, NOW + 5]),
        ),
        st.builds(Leave, st.integers(0, 1000)),
        st.just(Reload()),
    ),
    max_size=25,
)


def rank(task: LiveTask) -> tuple[int, int, str]:
    return (-task.priority, task.order, task.id)


def come(model: Model, op: Come) -> list[LiveTask]:
    name = f"job{op.job}"
    run = model.runs[name] = model.runs.get(name, 0) + 1
    spec = JobSpec.model_validate(
        {
            "name": name,
            "array": f"0-{op.size - 1}",
            "priority": op.priority,
            "task": {"shell": "true", "cpus": 1},
        }
    )
    tasks = []
    for row in run_tasks(spec, "alice", run, NOW - 10):
        task = LiveTask.pending(row)
        task.not_before = op.not_before
        tasks.append(task)
    return tasks


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(0, 4))
# A later run of lower priority is filed after the first run's tasks; loaded again, those rank
# before it: each must replace its old record, wherever that was filed.
@example([Come(0, 2, 0, None), Come(0, 2, -1, None), Reload()], 3)
def test_a_pass_takes_what_a_sort_of_every_waiting_task_would(
    steps: list[Come | Leave | Reload], room: int
) -> None:
    model, waiting = Model(), WaitingRoom()
    for op in steps:
        if isinstance(op, Come):
            for task in come(model, op):
                model.waiting[task.id] = task
                waiting.add(task)
        elif isinstance(op, Leave) and model.waiting:
            task = list(model.waiting.values())[op.nth % len(model.waiting)]
            del model.waiting[task.id]
            waiting.remove(task)
        elif isinstance(op, Reload):
            for task_id, task in list(model.waiting.items()):
                again = LiveTask.pending(task.row)
                again.not_before = task.not_before
                model.waiting[task_id] = again
                waiting.add(again)
    h = Harness()
    h.preemption = False
    h.add_agent("a1", cpus=room)
    filed, next_end = waiting.release(NOW)
    over = [t for t in model.waiting.values() if t.not_before is not None and t.not_before <= NOW]
    assert filed == len(over)
    assert next_end == (
        NOW + 5 if any(t.not_before == NOW + 5 for t in model.waiting.values()) else None
    )
    taken = waiting.take(h.snapshot(), NOW)

    assert set(waiting.tasks) == set(model.waiting)
    ready = [t for t in model.waiting.values() if t.not_before is None or t.not_before <= NOW]
    cohorts: dict[object, list[LiveTask]] = {}
    for task in sorted(ready, key=rank):
        cohorts.setdefault(key_of(task), []).append(task)
    expected = {key: [t.id for t in members[: room + 1]] for key, members in cohorts.items()}
    got = {key_of(waiting.tasks[part[0].id]): [r.id for r in part] for part in taken.cohorts}
    assert got == expected
    cut = {last for _, last in taken.cut}
    assert cut == {ids[-1] for key, ids in expected.items() if len(cohorts[key]) > room + 1}
