"""The fair-share report (``corral share``): each user's weight, quotas, decayed usage, share,
running and waiting work, as the scheduler's next pass would rank them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from corral.master.fairshare import FairShare, equivalent
from corral.master.view import AgentInfo, TaskInfo
from corral.scheduler.fairshare import dominant_share
from corral.scheduler.model import Quota as CoreQuota
from corral.scheduler.model import Resources
from corral.spec.accounts import Quota
from corral.spec.share import Amounts, DecayedUsage, ShareReport, UserShare
from corral.spec.states import TaskState

NOTHING = Resources()


def _quota(quota: CoreQuota | None) -> Quota:
    if quota is None:
        return Quota()
    cpus = None if quota.millicpus is None else quota.millicpus / 1000
    return Quota(cpus=cpus, mem=quota.mem, gpus=quota.gpus, tasks=quota.tasks)


def _amounts(r: Resources) -> Amounts:
    return Amounts(cpus=r.millicpus / 1000, mem=r.mem, gpus=r.gpus)


def share_report(
    fair_share: FairShare,
    agents: Iterable[AgentInfo],
    tasks: Iterable[TaskInfo],
    users: Iterable[Mapping[Any, Any]],
    now: float,
) -> ShareReport:
    """Every account, and every other owner with work or usage, lowest share first (ties by
    name, as the scheduler breaks them)."""
    capacity = sum((a.total for a in agents), NOTHING)
    held: dict[str, Resources] = {}
    running: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for t in tasks:
        if t.state is TaskState.PENDING:
            if not t.kill_requested:
                waiting[t.owner] = waiting.get(t.owner, 0) + 1
        elif t.state.active:
            held[t.owner] = held.get(t.owner, NOTHING) + t.resources
            running[t.owner] = running.get(t.owner, 0) + 1
    ledger, settings = fair_share.ledger, fair_share.settings
    usage = ledger.as_of(now)
    owners = {u["name"] for u in users} | set(held) | set(waiting) | set(usage)
    found = []
    for owner in owners:
        c, m, d, g = usage.get(owner, (0.0, 0.0, 0.0, 0.0))
        past = equivalent((c, m, d, g), ledger.tau)
        now_held = held.get(owner, NOTHING)
        weight = settings.weights.get(owner, 1.0)
        group = settings.owner_groups.get(owner, "")
        found.append(
            UserShare(
                user=owner,
                group=group,
                weight=weight,
                quota=_quota(settings.quotas.get(owner)),
                group_quota=_quota(settings.group_quotas.get(group)),
                usage=DecayedUsage(
                    cpu_hours=c / 1000 / 3600, mem_gib_hours=m / 1024 / 3600, gpu_hours=g / 3600
                ),
                usage_share=dominant_share(past, capacity),
                running_share=dominant_share(now_held, capacity),
                share=dominant_share(now_held + past, capacity, weight),
                running=running.get(owner, 0),
                held=_amounts(now_held),
                waiting=waiting.get(owner, 0),
            )
        )
    found.sort(key=lambda u: (u.share, u.user))
    return ShareReport(half_life=ledger.half_life, capacity=_amounts(capacity), users=found)
