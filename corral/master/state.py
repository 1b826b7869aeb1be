"""The master's state: the store and the live records, kept in step.

Every change goes through ``ClusterState.change()``: the writes of one transaction, then (only
after the commit) the in-memory updates and the publication of its events. A store failure
therefore never leaves memory ahead of the store. What is written is the applier's business
(``applier.py``); this module holds what it writes to.

Changes are made one at a time (the writer's turn, a lock across threads) and their store I/O
runs off the event loop: the loops hand their steps to ``write`` (a worker thread), and the
API's sync routes already run in worker threads. Whatever thread commits, the memory updates,
events and wake-ups of a change run on the event loop's thread, the only one that changes the
live records (asyncio's objects are not thread-safe), while the committing thread still holds
the turn, so the next change reads memory that has caught up with the store.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from corral.clock import Clock
from corral.master.events import EventBus
from corral.master.records import AgentRecord, LiveTask
from corral.master.view import TaskIndex
from corral.master.waiting import WaitingRoom
from corral.scheduler.model import Resources
from corral.spec.jobs import JobSpec
from corral.spec.services import HealthCheckStatus
from corral.spec.states import RunState, TaskState
from corral.store.store import Store, TaskCounts, Tx

P = ParamSpec("P")
T = TypeVar("T")
# How long the loop's thread, wanting the writer's turn, waits between runs of the memory
# updates that the holder of the turn handed it (the holder waits for them to release it).
_TURN_POLL = 0.002


class Change:
    """One transaction plus what to do in memory once it has committed."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.afterwards: list[Callable[[], None]] = []
        # Live tasks per run gained (retries) or lost (endings) in this change, not yet in memory.
        self.live_delta: Counter[tuple[str, int]] = Counter()
        self.finished_runs: set[tuple[str, int]] = set()
        self.running_runs: set[tuple[str, int]] = set()
        self.reschedule = False  # set when the change may let pending work be placed
        # The state each task changed here will have once committed (memory lags until then).
        self.states: dict[str, TaskState] = {}
        # Health check records reported here, per task (memory lags until the commit too).
        self.checks: dict[str, list[HealthCheckStatus]] = {}

    def state_of(self, task: LiveTask) -> TaskState:
        """The task's state as of this change."""
        return self.states.get(task.id, task.state)

    def after(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the commit."""
        self.afterwards.append(fn)


class ClusterState:
    """Live tasks, agents and unfinished runs, kept in step with the store."""

    def __init__(self, store: Store, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.tasks: dict[str, LiveTask] = {}
        self.index: TaskIndex[LiveTask] = TaskIndex()  # ``tasks`` by job, agent, owner
        # The PENDING ones among ``tasks``, filed by cohort for the scheduling pass.
        self.waiting = WaitingRoom()
        self.agents: dict[str, AgentRecord] = {}
        self.runs: dict[tuple[str, int], RunState] = {}
        self.live_per_run: Counter[tuple[str, int]] = Counter()
        # Every stored task (finished ones too) per (owner, state), as the store counts them.
        self.task_counts: TaskCounts = Counter()
        # What each owner's placed tasks hold, kept with the agents' ``used`` (fair share's
        # usage is counted from it on every pass, without a walk over every placed task).
        self.held: dict[str, Resources] = {}
        self.specs: dict[str, JobSpec] = {}
        self.wake = asyncio.Event()  # the scheduling loop: work may be placeable
        self.timers = asyncio.Event()  # the schedule loop: a job's next firing changed
        self._turn = threading.RLock()  # one writer at a time, whatever its thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._handed: deque[Callable[[], None]] = deque()  # memory updates for the loop
        # Who holds the turn (thread id) and since when (clock's monotonic): the watchdog's.
        self._holder: tuple[int, float] | None = None
        self._depth = 0  # the holder's nested turns (the lock is reentrant)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, memory updates run on ``loop`` (called on its thread, at start).
        Until then (a master driven step by step), each runs where its change committed."""
        self._loop, self._loop_thread = loop, threading.get_ident()

    async def write(self, step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``step`` (reads and changes of the store) in a worker thread, holding the
        writer's turn throughout: what it reads of memory stays as it read it until it is
        done, and the loop goes on serving agents and the API meanwhile."""
        return await asyncio.to_thread(self._in_turn, functools.partial(step, *args, **kwargs))

    def _in_turn(self, step: Callable[[], T]) -> T:
        with self._writers_turn():
            return step()

    @contextmanager
    def change(self) -> Iterator[Change]:
        """A transaction; on commit, apply its memory updates, publish its events, wake the
        scheduler (on the loop's thread, see the module's docstring)."""
        with self._writers_turn():
            with self.store.tx() as tx:
                ch = Change(tx)
                yield ch
            self._on_loop(lambda: self._committed(ch))

    def _committed(self, ch: Change) -> None:
        self.task_counts.update(ch.tx.task_counts)
        for fn in ch.afterwards:
            fn()
        self.bus.publish(ch.tx.events)
        if ch.reschedule:
            self.wake.set()

    def _on_the_loop(self) -> bool:
        return self._loop is None or threading.get_ident() == self._loop_thread

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        if self._on_the_loop():
            # The loop's thread must not just wait: the holder may be waiting for it to run
            # its memory updates. It runs them while it waits (a master driven step by step,
            # or a test calling an operation on the loop).
            while not self._turn.acquire(timeout=_TURN_POLL):
                self._run_handed()
        else:
            self._turn.acquire()
        try:
            if self._depth == 0:
                self._holder = (threading.get_ident(), self.clock.monotonic())
            self._depth += 1
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
            self._turn.release()

    def turn_held(self) -> tuple[int, float] | None:
        """The thread holding the writer's turn and since when (the clock's monotonic time),
        or None when nobody holds it."""
        return self._holder

    def _on_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop's thread and wait until it has run."""
        loop = self._loop
        if self._on_the_loop() or loop is None:
            fn()
            return
        done: Future[None] = Future()

        def run() -> None:
            try:
                fn()
            except BaseException as e:  # the committing thread raises it
                done.set_exception(e)
            else:
                done.set_result(None)

        self._handed.append(run)
        try:
            loop.call_soon_threadsafe(self._run_handed)
        except RuntimeError:  # the loop is closed: nobody else will run it
            self._run_handed()
        while True:
            try:
                done.result(timeout=1.0)
                return
            except TimeoutError:
                if not loop.is_running():  # stopped meanwhile: nobody else will run it
                    self._run_handed()

    def _run_handed(self) -> None:
        while self._handed:
            try:
                run = self._handed.popleft()
            except IndexError:  # the loop's thread took it meanwhile
                return
            run()

    # --- loading

    def load(self) -> None:
        """Fill the live records from the store (at start, and when taking over)."""
        for row in self.store.jobs():
            self.specs[row["name"]] = JobSpec.stored(row["spec"])
        for row in self.store.unfinished_runs():
            self.runs[(row["job"], row["number"])] = RunState(row["state"])
        for row in self.store.active_tasks():
            self.add_live(LiveTask.from_row(row))
        self.task_counts = self.store.task_counts()

    def add_live(self, task: LiveTask) -> None:
        """Track a task that is not finished."""
        self.tasks[task.id] = task
        self.index.add(task)
        if task.state is TaskState.PENDING:
            self.waiting.add(task)
        self.live_per_run[(task.job, task.run)] += 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used + task.resources
            self._hold(task.owner, task.resources)

    def drop_live(self, task: LiveTask) -> None:
        """Stop tracking a task that ended."""
        self.tasks.pop(task.id, None)
        self.index.remove(task)
        self.waiting.remove(task)
        self.live_per_run[(task.job, task.run)] -= 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used - task.resources
            self._hold(task.owner, Resources() - task.resources)

    def move(self, task: LiveTask, state: TaskState) -> None:
        """A live task is in ``state`` now (not a terminal one: ``drop_live`` ends it)."""
        task.state = state
        if state is not TaskState.PENDING:
            self.waiting.remove(task)

    def forget_run(self, key: tuple[str, int]) -> None:
        """A run has its outcome: it is no longer open."""
        self.runs.pop(key, None)

    def occupy(self, task: LiveTask, agent: AgentRecord, devices: tuple[int, ...] = ()) -> None:
        """A PENDING task was placed: it now holds resources on the agent, and the GPU indices
        ``devices`` there."""
        self.move(task, TaskState.STAGING)
        task.agent_id = agent.id
        task.row = task.row.placed(devices)
        task.request = None  # placed: the core is not asked to place it again
        self.index.moved(task)
        task.noted = ""
        agent.used = agent.used + task.resources
        self._hold(task.owner, task.resources)

    def _hold(self, owner: str, change: Resources) -> None:
        held = self.held.get(owner, Resources()) + change
        if held == Resources():
            self.held.pop(owner, None)
        else:
            self.held[owner] = held

    def free_of(self, agent: AgentRecord) -> Resources:
        """What is left on an agent."""
        return agent.total - agent.used
