"""Feasibility: can a task run on an agent, and if not, why not.

Every check answers with a :class:`Status`: :data:`FITS`, or a code plus a fixed, human-readable
reason ("insufficient cpus", "no driver docker") that the planner tallies into the message a user
sees. Checks are pure functions of their arguments; the planner decides which state to pass.

Two kinds of check:

- **static** ones depend only on the snapshot (agent schedulable, driver, volume roots,
  privilege, attributes, LIKE, UNLIKE, CLUSTER with a value) and are run once per shape;
- **dynamic** ones depend on what the plan has placed so far (host ports, resources, group
  counts, quota).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from corral.scheduler.model import (
    FITS,
    AgentSnapshot,
    Code,
    Constraint,
    Operator,
    Quota,
    Resources,
    Status,
    TaskRequest,
)

HOSTNAME = "hostname"
AGENT_ID_FIELDS = ("agent", "id")
_WHOLE_NUMBER = re.compile(r"[0-9]+")


NOT_SCHEDULABLE = Status(Code.UNRESOLVABLE, "not schedulable")
INSUFFICIENT_CPUS = Status(Code.UNSCHEDULABLE, "insufficient cpus")
INSUFFICIENT_MEM = Status(Code.UNSCHEDULABLE, "insufficient mem")
INSUFFICIENT_DISK = Status(Code.UNSCHEDULABLE, "insufficient disk")
INSUFFICIENT_GPUS = Status(Code.UNSCHEDULABLE, "insufficient gpus")

# The operators whose verdict depends on where other tasks of the group are: they need counts.
COUNTED = (Operator.UNIQUE, Operator.MAX_PER, Operator.GROUP_BY)


class InvalidConstraint(ValueError):
    """A constraint that cannot be evaluated (bad regular expression, missing number)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A constraint validated and prepared for evaluation, with its fixed failure statuses."""

    field: str
    operator: Operator
    value: str | None
    pattern: re.Pattern[str] | None  # LIKE and UNLIKE
    limit: int  # MAX_PER's n, GROUP_BY's n (0 when not given)
    broken: Status  # the answer when an agent breaks the rule
    missing: Status  # the answer when an agent lacks the field
    short: Status  # GROUP_BY only: fewer distinct values used than its n

    @property
    def static(self) -> bool:
        """True when the verdict depends on the agent alone, not on other placements."""
        return self.operator in (Operator.LIKE, Operator.UNLIKE) or (
            self.operator is Operator.CLUSTER and self.value is not None
        )

    @property
    def counted(self) -> bool:
        """True when the verdict depends on how many tasks of the group sit on each value."""
        return not self.static


def field_value(agent: AgentSnapshot, field: str) -> str | None:
    """The agent's value of a constraint field: hostname, agent id, or an attribute (or None)."""
    if field == HOSTNAME:
        return agent.hostname
    if field in AGENT_ID_FIELDS:
        return agent.id
    return agent.attributes.get(field)


def compile_rule(constraint: Constraint) -> Rule:
    """Validate a constraint and prepare it; raises :class:`InvalidConstraint`."""
    field, value = constraint.field, constraint.value
    shown = " ".join(str(part) for part in (field, constraint.operator, value) if part is not None)
    try:
        op = Operator(constraint.operator)
    except ValueError:
        raise InvalidConstraint(f"invalid constraint {shown!r}: unknown operator") from None
    if not field:
        raise InvalidConstraint(f"invalid constraint {shown!r}: empty field")
    pattern: re.Pattern[str] | None = None
    limit = 0
    if op in (Operator.LIKE, Operator.UNLIKE):
        if value is None:
            raise InvalidConstraint(f"invalid constraint {shown!r}: needs a regular expression")
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise InvalidConstraint(f"invalid constraint {shown!r}: {e}") from None
    elif op is Operator.MAX_PER or (op is Operator.GROUP_BY and value is not None):
        if value is None or not _WHOLE_NUMBER.fullmatch(value) or int(value) < 1:
            raise InvalidConstraint(f"invalid constraint {shown!r}: needs a whole number >= 1")
        limit = int(value)
    return Rule(
        field=field,
        operator=op,
        value=value,
        pattern=pattern,
        limit=limit,
        broken=Status(_code_of(op), _broken_reason(field, op, value)),
        missing=Status(Code.UNRESOLVABLE, f"missing attribute {field}"),
        short=Status(Code.UNSCHEDULABLE, f"GROUP_BY {field} {value}: too few values"),
    )


def compile_rules(constraints: Sequence[Constraint]) -> tuple[Rule, ...]:
    """Validate and prepare every constraint of a task, in order."""
    return tuple(compile_rule(c) for c in constraints)


def _code_of(op: Operator) -> Code:
    # A static rule can never change its mind about an agent; a counted one may once tasks end.
    static = op in (Operator.LIKE, Operator.UNLIKE, Operator.CLUSTER)
    return Code.UNRESOLVABLE if static else Code.UNSCHEDULABLE


def _broken_reason(field: str, op: Operator, value: str | None) -> str:
    if op is Operator.LIKE:
        return f"{field} not LIKE {value}"
    if op is Operator.UNLIKE:
        return f"{field} matches UNLIKE {value}"
    if op is Operator.CLUSTER:
        return f"CLUSTER {field} {value}" if value is not None else f"CLUSTER {field}"
    if op is Operator.UNIQUE:
        return f"UNIQUE {field} taken"
    if op is Operator.MAX_PER:
        return f"MAX_PER {field} {value} reached"
    return f"GROUP_BY {field} uneven"


def check_schedulable(agent: AgentSnapshot) -> Status:
    """Draining, disconnected and lost agents take no new work."""
    return FITS if agent.schedulable else NOT_SCHEDULABLE


def check_driver(driver: str, agent: AgentSnapshot) -> Status:
    """The agent must offer the task's driver (``process``, ``docker``)."""
    if driver in agent.drivers:
        return FITS
    return Status(Code.UNRESOLVABLE, f"no driver {driver}")


VOLUME_NOT_ALLOWED = Status(Code.UNRESOLVABLE, "volume path not allowed")
NOT_PRIVILEGED = Status(Code.UNRESOLVABLE, "privileged containers not allowed")


def path_under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it (by path components: /data2 is not in /data)."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


def check_volumes(host_paths: Sequence[str], agent: AgentSnapshot) -> Status:
    """Every host path a task mounts must lie under one of the agent's allowed roots."""
    for path in host_paths:
        if not any(path_under(path, root) for root in agent.volume_roots):
            return VOLUME_NOT_ALLOWED
    return FITS


def check_privilege(privileged: bool, agent: AgentSnapshot) -> Status:
    """Privileged containers only where the agent's admin allowed them."""
    return NOT_PRIVILEGED if privileged and not agent.privileged else FITS


HOST_PORT_IN_USE = Status(Code.UNSCHEDULABLE, "host port in use")
MAX_PORT = 65535


def check_host_ports(host_ports: Sequence[int], taken: Set[int]) -> Status:
    """None of the exact host ports a task needs may be ``taken`` on the agent already.

    ``taken`` holds the agent's ports in use when the plan started and those of the tasks the
    plan put there since. UNSCHEDULABLE: the port frees up when the task holding it ends.
    """
    if not host_ports or taken.isdisjoint(host_ports):
        return FITS
    return HOST_PORT_IN_USE


def invalid_host_ports(host_ports: Sequence[int]) -> str | None:
    """Why a task's exact host ports can never be given, or None if they can.

    A port listed twice is needed once (a docker mapping publishes 53/tcp and 53/udp on one host
    port); 0, "any free port", is the agent's business and has no place here.
    """
    if any(not 0 < port <= MAX_PORT for port in host_ports):
        return f"invalid request: host port outside 1..{MAX_PORT}"
    return None


def check_resources(request: Resources, free: Resources) -> Status:
    """Every amount requested must be at most what is free; names the first that is not."""
    if request.millicpus > free.millicpus:
        return INSUFFICIENT_CPUS
    if request.mem > free.mem:
        return INSUFFICIENT_MEM
    if request.disk > free.disk:
        return INSUFFICIENT_DISK
    if request.gpus > free.gpus:
        return INSUFFICIENT_GPUS
    return FITS


def check_static_rule(rule: Rule, value: str | None) -> Status:
    """The part of a rule that depends on the agent's field value alone.

    A missing field breaks every rule but UNLIKE (nothing to match, so nothing to exclude).
    """
    if value is None:
        return FITS if rule.operator is Operator.UNLIKE else rule.missing
    if rule.pattern is not None:
        matched = rule.pattern.fullmatch(value) is not None
        return FITS if matched == (rule.operator is Operator.LIKE) else rule.broken
    if rule.operator is Operator.CLUSTER and rule.value is not None and value != rule.value:
        return rule.broken
    return FITS


def check_static(task: TaskRequest, rules: Sequence[Rule], agent: AgentSnapshot) -> Status:
    """Schedulable, driver, then each rule's static part: what no placement can change."""
    status = check_schedulable(agent)
    if not status.fits:
        return status
    status = check_driver(task.driver, agent)
    if not status.fits:
        return status
    status = check_volumes(task.host_paths, agent)
    if not status.fits:
        return status
    status = check_privilege(task.privileged, agent)
    if not status.fits:
        return status
    for rule in rules:
        status = check_static_rule(rule, field_value(agent, rule.field))
        if not status.fits:
            return status
    return FITS


def check_counted_rule(rule: Rule, value: str, counts: Mapping[str, int]) -> Status:
    """UNIQUE, MAX_PER and value-less CLUSTER against the group's tasks per field value.

    ``counts`` maps a field value to the number (> 0) of the group's tasks on it, placed before
    the plan or by it. GROUP_BY is :func:`check_group_by`; static rules always fit here.
    """
    op = rule.operator
    if op is Operator.UNIQUE:
        return rule.broken if value in counts else FITS
    if op is Operator.MAX_PER:
        return rule.broken if counts.get(value, 0) >= rule.limit else FITS
    if op is Operator.CLUSTER and rule.value is None:
        # The first task of the group picks the value; every later one must follow it.
        return FITS if not counts or (len(counts) == 1 and value in counts) else rule.broken
    return FITS


def group_by_floor(values: Sequence[str], counts: Mapping[str, int]) -> int:
    """The fewest tasks of the group on any of ``values`` (the statically feasible ones)."""
    return min((counts.get(v, 0) for v in values), default=0)


def check_group_by(rule: Rule, value: str, counts: Mapping[str, int], floor: int) -> Status:
    """GROUP_BY, as Marathon: only the least used values take the next task.

    ``floor`` is :func:`group_by_floor` over the values of the cohort's statically feasible
    agents. With an ``n``, once every value holds a task, more go only if at least ``n`` distinct
    values are in use (Marathon waits for the values it was promised).
    """
    used = counts.get(value, 0)
    if used != floor:
        return rule.broken
    if used > 0 and len(counts) < rule.limit:
        return rule.short
    return FITS


def check_quota(
    who: str, need: Resources, count: int, held: Resources, held_count: int, quota: Quota
) -> Status:
    """What ``who`` holds (``held``, in ``held_count`` tasks) plus ``need`` (``count`` tasks)
    must stay within ``quota``. ``who`` names the account: "user alice", "group physics".

    The reason says where the account stands on each cap it would exceed: "quota: user alice
    at 8/8 cpus".
    """
    over = []
    if quota.millicpus is not None and held.millicpus + need.millicpus > quota.millicpus:
        over.append(f"{held.millicpus / 1000:g}/{quota.millicpus / 1000:g} cpus")
    if quota.mem is not None and held.mem + need.mem > quota.mem:
        over.append(f"{held.mem}/{quota.mem} MiB mem")
    if quota.gpus is not None and held.gpus + need.gpus > quota.gpus:
        over.append(f"{held.gpus}/{quota.gpus} gpus")
    if quota.tasks is not None and held_count + count > quota.tasks:
        over.append(f"{held_count}/{quota.tasks} tasks")
    if not over:
        return FITS
    return Status(Code.UNSCHEDULABLE, f"quota: {who} at {', '.join(over)}")
