"""Why a Marathon app's instances wait, as the ``processedOffersSummary`` of ``/v2/queue``.

Corral has no offers: each agent the last plan looked at stands for one, declined for the first
check it failed. The scheduler says so in one line (``selection.summarize``:
``0/3 agents fit: 2 insufficient cpus, 1 no driver docker``), read back here into Marathon's
funnel of reasons, each with the offers that reached it and the offers it declined.
"""

from __future__ import annotations

import re
from typing import Any

# Marathon's NoOfferMatchReason funnel, in the order it checks an offer.
FUNNEL = (
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
    "DeclinedScarceResources",
)
# Corral's refusals by Marathon's name; any other (constraints, attributes, drivers, volume
# paths, privilege) is a constraint the agent does not fulfil.
_REASONS = {
    "insufficient cpus": "InsufficientCpus",
    "insufficient mem": "InsufficientMemory",
    "insufficient disk": "InsufficientDisk",
    "insufficient gpus": "InsufficientGpus",
    "host port in use": "InsufficientPorts",
    "not schedulable": "AgentMaintenance",
}
_SUMMARY = re.compile(r"^(\d+)/(\d+) agents fit(?:: (.*))?$")
_PART = re.compile(r"^(\d+) (.+)$")


QUOTA = "quota: "  # a task over its user's or group's quota: no agent is looked at


def _marathon_reason(reason: str) -> str:
    return _REASONS.get(reason, "UnfulfilledConstraint")


def _declined(summary: str) -> tuple[int, dict[str, int]]:
    """How many agents the plan looked at, and how many each Marathon reason declined."""
    match = _SUMMARY.match(summary)
    if match is None:
        return 0, {}
    declined: dict[str, int] = {}
    # A reason may hold ", " itself: parts start with a count.
    for part in re.split(r", (?=\d+ )", match[3] or ""):
        counted = _PART.match(part)
        if counted is not None:
            name = _marathon_reason(counted[2])
            declined[name] = declined.get(name, 0) + int(counted[1])
    return int(match[2]), declined


def offers_summary(waiting: str, agents: int) -> dict[str, Any]:
    """Marathon's ``processedOffersSummary`` for an app whose instances wait because of
    ``waiting`` (a task's reason from the last plan; empty when none was made yet) on a
    cluster of ``agents``. Over a quota, every agent declines it as Mesos declines an offer
    beyond its role's quota: UnfulfilledRole."""
    if waiting.startswith(QUOTA):
        processed, declined = agents, {"UnfulfilledRole": agents}
    else:
        processed, declined = _declined(waiting)
    funnel = []
    reached = processed
    for reason in FUNNEL:
        n = declined.get(reason, 0)
        funnel.append({"reason": reason, "declined": n, "processed": reached})
        reached -= n
    return {
        "processedOffersCount": processed,
        "unusedOffersCount": sum(declined.values()),
        "rejectSummaryLastOffers": funnel,
        "rejectSummaryLaunchAttempt": [dict(r) for r in funnel],
    }
