"""The data the core reads and writes: a read-only snapshot in, a plan out.

Plain frozen dataclasses, standard library only. CPU is counted in millicores so that sums and
comparisons are exact (no float drift can over-commit an agent). Every answer about a task is a
:class:`Status`: a code the master can act on and a reason a user can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each resource. ``mem`` and ``disk`` are MiB; ``millicpus`` is 1/1000 cpu."""

    millicpus: int = 0
    mem: int = 0
    disk: int = 0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.millicpus + other.millicpus,
            self.mem + other.mem,
            self.disk + other.disk,
            self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.millicpus - other.millicpus,
            self.mem - other.mem,
            self.disk - other.disk,
            self.gpus - other.gpus,
        )

    def fits_in(self, available: Resources) -> bool:
        """True when every amount here is at most the one in ``available``."""
        return (
            self.millicpus <= available.millicpus
            and self.mem <= available.mem
            and self.disk <= available.disk
            and self.gpus <= available.gpus
        )


class Code(StrEnum):
    """The outcome of a check or a decision, after the Kubernetes scheduler framework's codes."""

    FITS = "fits"  # the task may run here
    UNSCHEDULABLE = "unschedulable"  # not now: may fit once work on the agent finishes
    UNRESOLVABLE = "unresolvable"  # never, whatever runs there: driver, attribute, draining
    PREEMPTED = "preempted"  # a placed task must give its room to higher-priority work
    STOPPED = "stopped"  # a placed task is no longer wanted (scaled down, replaced)


@dataclass(frozen=True, slots=True)
class Status:
    """The answer of a check or a decision: a code and, unless it fits, a fixed reason."""

    code: Code
    reason: str = ""

    @property
    def fits(self) -> bool:
        """True when the check passed."""
        return self.code is Code.FITS


FITS = Status(Code.FITS)


class Operator(StrEnum):
    """Marathon's constraint operators."""

    UNIQUE = "UNIQUE"  # no two tasks of the group share a value of the field
    CLUSTER = "CLUSTER"  # every task on agents whose field equals the value
    GROUP_BY = "GROUP_BY"  # spread the group evenly over the field's values
    LIKE = "LIKE"  # the field matches the regular expression (whole value)
    UNLIKE = "UNLIKE"  # the field does not match the regular expression
    MAX_PER = "MAX_PER"  # at most ``value`` tasks of the group per value of the field
    IS = "IS"  # Marathon 1.5's name of CLUSTER with a value; kept so specs read back as written


@dataclass(frozen=True, slots=True)
class Constraint:
    """A placement rule on a field: ``hostname``, ``agent`` (the id) or an attribute name.

    ``IS`` is taken as the ``CLUSTER`` it means: the rest of the core knows only CLUSTER.
    """

    field: str
    operator: Operator
    value: str | None = None

    def __post_init__(self) -> None:
        if self.operator is Operator.IS:
            object.__setattr__(self, "operator", Operator.CLUSTER)


class Strategy(StrEnum):
    """How to choose among feasible agents."""

    BINPACK = "binpack"  # fill the fullest agent first: keeps whole nodes free for big work
    SPREAD = "spread"  # fill the emptiest agent first: spreads failure risk and load


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """One agent as the master sees it when the plan starts."""

    id: str
    hostname: str
    total: Resources
    used: Resources
    attributes: Mapping[str, str] = field(default_factory=dict)
    drivers: frozenset[str] = frozenset({"process"})
    schedulable: bool = True  # False while DRAINING, DISCONNECTED or LOST
    volume_roots: tuple[str, ...] = ()  # host paths under which it mounts volumes
    privileged: bool = False  # whether it runs privileged containers
    ports_used: frozenset[int] = frozenset()  # fixed host ports its placed tasks already hold
    # The indices of its GPUs, ``total.gpus`` of them; () stands for 0..total.gpus-1.
    devices: tuple[int, ...] = ()
    devices_used: frozenset[int] = frozenset()  # GPU indices its placed tasks already hold

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """The indices of its GPUs: ``devices``, or 0..total.gpus-1 when not given."""
        return self.devices or tuple(range(self.total.gpus))


@dataclass(frozen=True, slots=True)
class PlacedTask:
    """A task that already holds resources; counts for group constraints and fair share."""

    task_id: str
    group: str
    agent_id: str
    owner: str
    resources: Resources
    priority: int = 0  # work of a higher priority than this is never its preemptor
    devices: tuple[int, ...] = ()  # the GPU indices it holds on its agent
    # Whether a preemption may stop it: a batch task may; a service's only when its spec says
    # so; a gang's rank never (its gang would stop whole).
    preemptible: bool = True
    stopping: bool = False  # asked to stop already: its room is coming back


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task waiting for a place. Tasks of one job or service share ``group``."""

    id: str
    group: str
    resources: Resources
    driver: str = "process"
    constraints: tuple[Constraint, ...] = ()
    strategy: Strategy = Strategy.BINPACK
    owner: str = ""
    priority: int = 0  # higher goes first within an owner's share
    order: int = 0  # submission order: lower goes first among equals
    host_paths: tuple[str, ...] = ()  # host paths it mounts (normalized, absolute)
    privileged: bool = False  # needs an agent that allows privileged containers
    # Exact host ports it must get (required service ports, fixed docker hostPorts), each in
    # 1..65535; one listed twice is needed once. "Any free port" is the agent's to hand out.
    host_ports: tuple[int, ...] = ()
    # All-or-nothing: the pending tasks naming one gang are placed together or none is (an MPI
    # job's ranks). None: placed on its own.
    gang: str | None = None
    # With ``gang``: the node of the gang this member is on. The members of one node share an
    # agent, and each node gets an agent of its own (an MPI job's nodes × tasks per node).
    # None: each member is placed wherever it fits.
    gang_node: int | None = None
    # With ``gang``: how many members the whole gang has; while fewer are pending, it waits
    # whole. 0: the pending members are the whole gang.
    gang_size: int = 0
    waiting_since: float = 0.0  # when it began to wait for a place (preemption's threshold)


@dataclass(frozen=True, slots=True)
class Quota:
    """Hard caps on what an owner (or an owners' group) holds at once, placed tasks and this
    plan's together; None: no cap on that one. ``tasks`` counts tasks, whatever their size."""

    millicpus: int | None = None
    mem: int | None = None
    gpus: int | None = None
    tasks: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The read-only cluster state a plan is computed from."""

    agents: tuple[AgentSnapshot, ...]
    placed: tuple[PlacedTask, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)  # fair-share weight per owner
    quotas: Mapping[str, Quota] = field(default_factory=dict)  # hard caps per owner
    # Hard caps per group of owners, on what its owners hold together; an owner's group is
    # named in ``owner_groups`` (an owner in none is capped by its own quota alone).
    group_quotas: Mapping[str, Quota] = field(default_factory=dict)
    owner_groups: Mapping[str, str] = field(default_factory=dict)
    # What each owner held in the past, decayed (the master's half-life): resource-seconds
    # divided by the half-life's mean life, so that holding R for ever counts as holding R.
    # Added to what the owner holds now when fair share ranks owners.
    past: Mapping[str, Resources] = field(default_factory=dict)
    # Whether the plan looks for preemptions (Nomad's PreemptionConfig): off unless the
    # master runs with preemption on, so that no pass computes victims nobody stops.
    preemption: bool = False
    # A waiting task may preempt once it has waited this long (seconds) by ``now``.
    preempt_after: float = 0.0
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Put task ``task_id`` on agent ``agent_id``, giving it the GPUs of ``devices``.

    ``devices`` holds as many of the agent's GPU indices as the task asked for, ascending; no
    other task has them until this one ends.
    """

    task_id: str
    agent_id: str
    devices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Stop:
    """End task ``task_id`` on agent ``agent_id``; ``status`` (code STOPPED) says why."""

    task_id: str
    agent_id: str
    status: Status


@dataclass(frozen=True, slots=True)
class Preemption:
    """Stop placed task ``task_id`` on ``agent_id`` so that pending task ``by`` fits there.

    ``status`` has code PREEMPTED and a reason naming ``by``. Every preemption of one ``by``
    is on one agent: the room it makes is for ``by`` alone.
    """

    task_id: str
    agent_id: str
    by: str
    status: Status


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``plan()`` decided, in decision order: what to place, stop and preempt, and why
    the rest must wait.

    A placement's code is FITS by definition, so it carries none. ``stops`` is empty for now:
    stopping is the reconciler's decision (reconcile.py), which the master will carry here.
    A task a preemption makes room for stays in ``waiting`` (with the filters' status) until
    its victims have stopped and a later plan places it.
    """

    placements: tuple[Placement, ...]
    waiting: Mapping[str, Status]  # task id -> why it is not placed: a code and a reason
    preemptions: tuple[Preemption, ...] = ()
    stops: tuple[Stop, ...] = ()

    @property
    def unplaced(self) -> dict[str, str]:
        """Task id -> the reason alone, for callers that only show words (the master today)."""
        return {task_id: status.reason for task_id, status in self.waiting.items()}
