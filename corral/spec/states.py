"""The state machines of tasks, runs and agents (Mesos names, so Marathon's API maps 1:1)."""

from enum import StrEnum


class TaskState(StrEnum):
    """Where a task is in its life. Terminal states are final."""

    PENDING = "PENDING"  # accepted, waiting for a placement (or for its retry backoff)
    STAGING = "STAGING"  # placed on an agent, launch message sent
    STARTING = "STARTING"  # the agent is preparing the sandbox and starting it
    RUNNING = "RUNNING"  # the process or container runs
    FINISHED = "FINISHED"  # exited with status 0
    FAILED = "FAILED"  # exited non-zero, could not start, or broke a limit
    KILLED = "KILLED"  # stopped on request (user kill, shutdown)
    LOST = "LOST"  # its agent vanished or forgot it; the outcome is unknown
    ERROR = "ERROR"  # the spec could not be run at all on the chosen agent

    @property
    def terminal(self) -> bool:
        """True for states a task never leaves."""
        return self in TERMINAL_TASK_STATES

    @property
    def active(self) -> bool:
        """True while the task holds resources on an agent."""
        return self in (TaskState.STAGING, TaskState.STARTING, TaskState.RUNNING)


TERMINAL_TASK_STATES = frozenset(
    {TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.LOST, TaskState.ERROR}
)


class RunState(StrEnum):
    """The outcome of one firing of a job, over all of its tasks."""

    PENDING = "PENDING"  # no task has started yet
    RUNNING = "RUNNING"  # at least one task started, not all are done
    SUCCEEDED = "SUCCEEDED"  # every task finished with status 0
    FAILED = "FAILED"  # some task failed after its last retry
    KILLED = "KILLED"  # killed on request before it completed

    @property
    def terminal(self) -> bool:
        """True once the run has an outcome."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.KILLED)


class AgentState(StrEnum):
    """How the master sees a node."""

    ACTIVE = "ACTIVE"  # connected, accepts new work
    DRAINING = "DRAINING"  # connected, runs what it has, accepts nothing new
    DISCONNECTED = "DISCONNECTED"  # silent for longer than its heartbeat timeout
    LOST = "LOST"  # silent past the loss timeout: its tasks were marked LOST
