"""Health checks of a running task, with Marathon's semantics.

Each check runs first ``delay`` seconds after the task is RUNNING, then every ``interval``
(counted from the start of the previous one; a check that took longer, up to its ``timeout``,
is followed at once by the next).
Failures within ``grace_period`` of the task's start do not count, until the check has passed
once. The task is healthy when every check's latest result is. Each check keeps a record
(alive, failures in a row, first and last success, last failure and its cause); the owner gets
a report when the verdict changes (the first one included), when a record changes other than by
one more success, and at least every ``REFRESH`` seconds while checks pass, so that a last
success it shows is never much older than the truth. When a check fails
``max_consecutive_failures`` times in a row (if > 0), the owner is told to kill the task and
checking stops.

The clock and the sleep are injected, so tests can run the schedule without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from corral.agent.probes import CheckResult, Probe
from corral.spec.services import HealthCheckSpec, HealthCheckStatus, unhealthy_reason

log = logging.getLogger(__name__)

REFRESH = 60.0  # seconds: passing checks are reported at least this often


@dataclass(frozen=True)
class HealthReport:
    """What the owner is told: the new verdict (None when it did not change), the checks'
    messages, and every check's record, in the order of the checks."""

    healthy: bool | None
    message: str
    checks: list[HealthCheckStatus]


OnReport = Callable[[HealthReport], Awaitable[None]]
OnFailed = Callable[[str], Awaitable[None]]  # why the task must be killed


@dataclass
class _Check:
    spec: HealthCheckSpec
    last: CheckResult | None = None  # the latest result that counted
    failures: int = 0  # counted failures in a row
    passed: bool = False  # healthy once: from then on its grace period is over
    status: HealthCheckStatus = field(default_factory=HealthCheckStatus)


class HealthMonitor:
    """Runs the health checks of one task until stopped; one asyncio task per check."""

    def __init__(
        self,
        checks: Sequence[HealthCheckSpec],
        probe: Probe,
        *,
        on_report: OnReport,
        on_failed: OnFailed,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Prepare to run ``checks`` through ``probe``; nothing runs before ``start``.

        ``started`` is when the task started on ``clock`` (default: now), the origin of the
        grace periods; ``sleep`` waits on that clock. ``wall`` dates the records.
        """
        self._checks = [_Check(spec) for spec in checks]
        self._probe = probe
        self._on_report = on_report
        self._on_failed = on_failed
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._started = clock() if started is None else started
        self._told_at: float | None = None  # when the last report went out, on ``clock``
        self._healthy: bool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def healthy(self) -> bool | None:
        """The last verdict told, None before the first."""
        return self._healthy

    def start(self) -> None:
        """Start checking (the first check of each after its ``delay``)."""
        if self._tasks or self._closed:
            return
        for i, check in enumerate(self._checks):
            name = f"health check {i} ({check.spec.protocol})"
            self._tasks.append(asyncio.create_task(self._run(check), name=name))

    async def stop(self) -> None:
        """Stop checking and wait until no check runs any more. Idempotent.

        May be called from a check's own verdict or kill callback: that task then ends on its
        own right after.
        """
        self._closed = True
        current = asyncio.current_task()
        others = [task for task in self._tasks if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _run(self, check: _Check) -> None:
        spec = check.spec
        due = self._clock() + spec.delay
        while not self._closed:
            await self._sleep(max(0.0, due - self._clock()))
            began = self._clock()
            due = began + spec.interval
            result = await self._probe_once(spec)
            if self._closed or await self._take(check, result, began):
                return

    async def _probe_once(self, spec: HealthCheckSpec) -> CheckResult:
        try:
            return await self._probe(spec)
        except Exception as exc:  # a bug in a check must not end the checking silently
            log.exception("health check %s failed to run", spec.protocol)
            return CheckResult(False, f"{spec.protocol} check could not run: {exc}")

    async def _take(self, check: _Check, result: CheckResult, began: float) -> bool:
        """Count ``result``; report if anything worth telling changed. True once the task
        must go."""
        spec, old, now = check.spec, check.status, self._wall()
        if result.healthy:
            check.passed, check.failures, check.last = True, 0, result
            check.status = old.model_copy(
                update={
                    "alive": True,
                    "consecutive_failures": 0,
                    "first_success": now if old.first_success is None else old.first_success,
                    "last_success": now,
                }
            )
            changed = old.alive is not True
        elif not check.passed and began - self._started < spec.grace_period:
            return False  # the task may still be starting: not a failure yet
        else:
            check.failures += 1
            check.last = result
            check.status = old.model_copy(
                update={
                    "alive": False,
                    "consecutive_failures": check.failures,
                    "last_failure": now,
                    "last_failure_cause": result.message,
                }
            )
            changed = True
        await self._tell(changed)
        limit = spec.max_consecutive_failures
        if limit and check.failures >= limit and not self._closed:
            self._closed = True
            await self._on_failed(unhealthy_reason(check.failures, result.message))
            return True
        return False

    async def _tell(self, changed: bool) -> None:
        """Report the verdict if it changed, else the records if ``changed`` or stale."""
        if self._closed:
            return
        verdict = self._verdict()
        healthy = None if verdict is None or verdict[0] == self._healthy else verdict[0]
        now = self._clock()
        stale = self._told_at is None or now - self._told_at >= REFRESH
        if healthy is None and not (changed or stale):
            return
        if healthy is not None:
            self._healthy = healthy  # set before the await: checks running meanwhile see it
        self._told_at = now
        messages = [c.last.message for c in self._checks if c.last is not None]
        report = HealthReport(
            healthy=healthy,
            message=verdict[1] if verdict is not None else "; ".join(messages),
            checks=[c.status for c in self._checks],
        )
        await self._on_report(report)

    def _verdict(self) -> tuple[bool, str] | None:
        """Unhealthy if any check's latest counted result is; healthy once all passed."""
        results = [check.last for check in self._checks]
        failing = [r.message for r in results if r is not None and not r.healthy]
        if failing:
            return False, "; ".join(failing)
        if all(r is not None for r in results):
            return True, "; ".join(r.message for r in results if r is not None)
        return None
