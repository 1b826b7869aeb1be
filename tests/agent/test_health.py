"""The health check schedule and verdicts, on virtual time with scripted check results."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from corral.agent.health import REFRESH, HealthMonitor, HealthReport
from corral.agent.probes import CheckResult
from corral.spec.services import HealthCheckSpec, HealthCheckStatus, unhealthy_reason

OK = CheckResult(True, "HTTP 200 from :31005/")
BAD = CheckResult(False, "HTTP 500 from :31005/")


class VirtualTime:
    """A clock that moves only when every task waits on it: to the next sleeper's wake time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        """The virtual now."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` virtual seconds."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._order), wake))
        await wake

    async def run_until(self, until: float) -> None:
        """Let time pass up to ``until``, waking each sleeper in turn."""
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            at, _, wake = heapq.heappop(self._sleepers)
            self.now = at
            if not wake.done():
                wake.set_result(None)
            await settle()
        self.now = until


async def settle() -> None:
    """Let every ready task run until it waits again (the checks here do no real I/O)."""
    for _ in range(20):
        await asyncio.sleep(0)


def check(**fields: Any) -> HealthCheckSpec:
    """A check with no delay nor grace, every second, never killing; ``fields`` change that."""
    base = {"delay": 0, "grace_period": 0, "interval": 1, "timeout": 1}
    return HealthCheckSpec.model_validate({**base, "max_consecutive_failures": 0, **fields})


class Scenario:
    """A monitor on virtual time whose checks answer scripted results; records what it tells."""

    def __init__(
        self,
        checks: list[HealthCheckSpec],
        results: list[Iterable[CheckResult]],
        started: float | None = None,
    ) -> None:
        self.time = VirtualTime()
        self.probes: list[tuple[float, int]] = []  # when, which check
        self.reports: list[tuple[float, HealthReport]] = []
        self.failed: list[tuple[float, str]] = []
        scripts = {id(spec): iter(script) for spec, script in zip(checks, results, strict=True)}
        index = {id(spec): i for i, spec in enumerate(checks)}

        async def probe(spec: HealthCheckSpec) -> CheckResult:
            self.probes.append((self.time.now, index[id(spec)]))
            return next(scripts[id(spec)], OK)

        async def on_report(report: HealthReport) -> None:
            self.reports.append((self.time.now, report))

        async def on_failed(reason: str) -> None:
            self.failed.append((self.time.now, reason))

        self.monitor = HealthMonitor(
            checks,
            probe,
            on_report=on_report,
            on_failed=on_failed,
            started=started,
            clock=self.time.clock,
            sleep=self.time.sleep,
            wall=self.time.clock,
        )

    @property
    def verdicts(self) -> list[tuple[float, bool, str]]:
        """The verdicts told, each when it changed."""
        return [(at, r.healthy, r.message) for at, r in self.reports if r.healthy is not None]

    async def run(self, until: float) -> None:
        """Start the monitor and let ``until`` virtual seconds pass."""
        self.monitor.start()
        await self.time.run_until(until)


def run_scenario(
    checks: list[HealthCheckSpec],
    results: list[Iterable[CheckResult]],
    until: float,
    started: float | None = None,
) -> Scenario:
    """Run a monitor for ``until`` virtual seconds, then stop it."""
    scenario = Scenario(checks, results, started)

    async def main() -> None:
        await scenario.run(until)
        await scenario.monitor.stop()

    asyncio.run(main())
    return scenario


def test_the_first_check_comes_after_the_delay_then_one_every_interval() -> None:
    s = run_scenario([check(delay=5, interval=2)], [[]], until=11)
    assert [at for at, _ in s.probes] == [5, 7, 9, 11]


def test_the_verdict_is_told_only_when_it_changes_the_first_one_included() -> None:
    s = run_scenario([check()], [[OK, OK, BAD, BAD, OK, OK]], until=5)
    assert s.verdicts == [(0, True, OK.message), (2, False, BAD.message), (4, True, OK.message)]
    assert s.failed == []  # max_consecutive_failures 0: never killed


def test_failures_in_a_row_reaching_the_maximum_kill_and_a_success_resets_the_count() -> None:
    script = [BAD, BAD, OK, BAD, BAD, BAD, OK]
    s = run_scenario([check(max_consecutive_failures=3)], [script], until=10)
    assert s.failed == [(5, unhealthy_reason(3, BAD.message))]
    assert s.failed[0][1] == "failed 3 health checks in a row: HTTP 500 from :31005/"
    assert [at for at, _ in s.probes] == [0, 1, 2, 3, 4, 5]  # none after the kill


def test_failures_within_the_grace_period_neither_count_nor_tell() -> None:
    s = run_scenario([check(grace_period=3.5, max_consecutive_failures=2)], [[BAD] * 10], until=10)
    assert s.verdicts == [(4, False, BAD.message)]
    assert s.failed == [(5, unhealthy_reason(2, BAD.message))]


def test_the_grace_period_ends_at_the_first_success() -> None:
    script = [OK, BAD, BAD]
    s = run_scenario([check(grace_period=100, max_consecutive_failures=2)], [script], until=5)
    assert s.verdicts == [(0, True, OK.message), (1, False, BAD.message)]
    assert s.failed == [(2, unhealthy_reason(2, BAD.message))]


def test_the_grace_period_counts_from_the_tasks_start_not_the_monitors() -> None:
    # A recovered task, RUNNING for 9.5 s already: its grace period of 10 s ends at 0.5.
    spec = check(grace_period=10, max_consecutive_failures=1)
    s = run_scenario([spec], [[BAD] * 5], until=3, started=-9.5)
    assert s.failed == [(1, unhealthy_reason(1, BAD.message))]


def test_several_checks_are_healthy_only_when_all_are() -> None:
    other_bad = CheckResult(False, "connection refused on port 31006")
    checks = [check(), check(protocol="TCP", delay=0.5)]
    s = run_scenario(checks, [[OK, OK, OK], [other_bad, OK]], until=2)
    assert s.verdicts == [
        (0.5, False, other_bad.message),
        (1.5, True, f"{OK.message}; {OK.message}"),
    ]


def test_a_check_that_raises_counts_as_a_failure() -> None:
    async def main() -> list[tuple[bool | None, str]]:
        told: list[tuple[bool | None, str]] = []

        async def probe(spec: HealthCheckSpec) -> CheckResult:
            raise RuntimeError("boom")

        async def on_report(report: HealthReport) -> None:
            told.append((report.healthy, report.message))

        time = VirtualTime()
        monitor = HealthMonitor(
            [check()],
            probe,
            on_report=on_report,
            on_failed=lambda reason: asyncio.sleep(0),
            clock=time.clock,
            sleep=time.sleep,
        )
        monitor.start()
        await time.run_until(0)
        await monitor.stop()
        return told

    assert asyncio.run(main()) == [(False, "HTTP check could not run: boom")]


def test_stopping_cancels_every_check_and_nothing_runs_after() -> None:
    async def main() -> tuple[Scenario, list[asyncio.Task[Any]]]:
        scenario = Scenario([check(), check(interval=3)], [[], []])
        await scenario.run(until=1)
        await scenario.monitor.stop()
        await scenario.monitor.stop()  # idempotent
        probes = len(scenario.probes)
        await scenario.time.run_until(10)
        assert len(scenario.probes) == probes
        return scenario, [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    scenario, left = asyncio.run(main())
    assert left == []
    assert scenario.monitor.healthy is True


def test_a_kill_asked_from_the_kill_callback_stops_the_other_checks() -> None:
    async def main() -> list[tuple[float, int]]:
        time = VirtualTime()
        probes: list[tuple[float, int]] = []
        monitor: HealthMonitor | None = None

        async def probe(spec: HealthCheckSpec) -> CheckResult:
            probes.append((time.now, spec.max_consecutive_failures))
            return BAD

        async def on_failed(reason: str) -> None:
            assert monitor is not None
            await monitor.stop()  # what the agent does: from within the failing check

        monitor = HealthMonitor(
            [check(max_consecutive_failures=1), check(max_consecutive_failures=0, delay=0.5)],
            probe,
            on_report=lambda report: asyncio.sleep(0),
            on_failed=on_failed,
            clock=time.clock,
            sleep=time.sleep,
        )
        monitor.start()
        await time.run_until(5)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return probes

    assert asyncio.run(main()) == [(0, 1)]


@pytest.mark.parametrize(
    ("count", "reason"),
    [(1, "failed 1 health check in a row: x"), (3, "failed 3 health checks in a row: x")],
)
def test_the_kill_reason_counts_the_failures(count: int, reason: str) -> None:
    assert unhealthy_reason(count, "x") == reason


def test_each_check_keeps_its_record_of_successes_and_failures() -> None:
    s = run_scenario([check(), check(protocol="TCP")], [[OK, BAD, BAD, OK], []], until=3)
    records = [(at, r.checks[0]) for at, r in s.reports]
    assert records[-2] == (
        2,
        HealthCheckStatus(
            alive=False,
            consecutive_failures=2,
            first_success=0,
            last_success=0,
            last_failure=2,
            last_failure_cause=BAD.message,
        ),
    )
    assert records[-1][1].alive is True and records[-1][1].consecutive_failures == 0
    assert (records[-1][1].last_success, records[-1][1].last_failure) == (3, 2)
    assert all(len(r.checks) == 2 for _, r in s.reports)  # every check, in order


def test_failures_are_reported_each_and_passing_checks_every_refresh() -> None:
    script = [OK] * 20 + [BAD, BAD] + [OK] * 20
    s = run_scenario([check(interval=10)], [script], until=350)
    told = [at for at, _ in s.reports]
    assert REFRESH == 60
    assert told == [0, 60, 120, 180, 200, 210, 220, 280, 340]


def test_failures_within_the_grace_period_are_not_recorded() -> None:
    s = run_scenario([check(grace_period=2.5)], [[BAD, BAD, BAD, OK]], until=3)
    assert [(at, r.checks[0].last_failure) for at, r in s.reports] == [(3, None)]
