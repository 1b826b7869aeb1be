"""The gang policy: a rank's end stops the others and retries the whole gang, finishes it, or
changes nothing; and a gang's run fails for a rank's failure even though the others were
killed for it."""

from __future__ import annotations

import pytest

from corral.master.policy.effects import RetryGang, StopGang
from corral.master.policy.retry import (
    EndedTask,
    GangEnd,
    GangRank,
    RetrySettings,
    decide_gang,
)
from corral.master.policy.runs import RunTally, run_outcome
from corral.spec.states import RunState, TaskState

S = TaskState
NOW = 1_000.0
RETRIES = RetrySettings(retries=2, backoff=5.0, max_delay=60.0)
LIVE = (GangRank("mpi.1.1.0", 1, False), GangRank("mpi.1.2.0", 2, False))


def ended(
    state: TaskState, *, rank: int = 1, attempt: int = 0, asked: bool = False, reason: str = ""
) -> EndedTask:
    return EndedTask(f"mpi.1.{rank}.{attempt}", attempt, state, asked, reason)


def gang(
    rank: int = 1,
    others: tuple[GangRank, ...] = LIVE,
    every_rank: bool = False,
    superseded: bool = False,
) -> GangEnd:
    return GangEnd("mpi", 1, rank, every_rank, others, superseded)


STOPPED = "gang mpi.1 stopped: "
CASES = {
    "a_failed_rank_stops_the_others_and_retries_the_whole_gang_after_its_backoff": (
        ended(S.FAILED, rank=3, reason="exited with status 1"),
        gang(rank=3),
        RETRIES,
        [
            StopGang(
                "mpi.1",
                ("mpi.1.1.0", "mpi.1.2.0"),
                False,
                STOPPED + "rank 3 FAILED: exited with status 1",
            ),
            RetryGang(
                "mpi",
                1,
                1,
                NOW + 5.0,
                "retry 1 of 2 of gang mpi.1 in 5s after rank 3 FAILED: exited with status 1",
            ),
        ],
    ),
    "a_rank_lost_with_its_agent_retries_the_gang_as_a_failure_does": (
        ended(S.LOST, rank=3, reason="agent node-c lost"),
        gang(rank=3),
        RETRIES,
        [
            StopGang(
                "mpi.1",
                ("mpi.1.1.0", "mpi.1.2.0"),
                False,
                STOPPED + "rank 3 LOST: agent node-c lost",
            ),
            RetryGang(
                "mpi",
                1,
                1,
                NOW + 5.0,
                "retry 1 of 2 of gang mpi.1 in 5s after rank 3 LOST: agent node-c lost",
            ),
        ],
    ),
    "the_backoff_doubles_with_each_attempt_of_the_gang": (
        ended(S.FAILED, rank=3, attempt=1),
        gang(rank=3),
        RETRIES,
        [
            StopGang("mpi.1", ("mpi.1.1.0", "mpi.1.2.0"), False, STOPPED + "rank 3 FAILED"),
            RetryGang(
                "mpi", 1, 2, NOW + 10.0, "retry 2 of 2 of gang mpi.1 in 10s after rank 3 FAILED"
            ),
        ],
    ),
    "a_failure_on_the_last_attempt_stops_the_gang_and_retries_nothing": (
        ended(S.FAILED, rank=3, attempt=2),
        gang(rank=3),
        RETRIES,
        [StopGang("mpi.1", ("mpi.1.1.0", "mpi.1.2.0"), False, STOPPED + "rank 3 FAILED")],
    ),
    "ranks_already_being_stopped_are_not_asked_again": (
        ended(S.FAILED, rank=3, attempt=2),
        gang(rank=3, others=(GangRank("mpi.1.1.0", 1, True), GangRank("mpi.1.2.0", 2, False))),
        RETRIES,
        [StopGang("mpi.1", ("mpi.1.2.0",), False, STOPPED + "rank 3 FAILED")],
    ),
    "a_rank_of_an_attempt_retried_already_changes_nothing": (
        ended(S.FAILED, rank=2),
        gang(rank=2, superseded=True),
        RETRIES,
        [],
    ),
    "a_rank_stopped_for_the_gang_changes_nothing_more": (
        ended(S.KILLED, rank=2, asked=True),
        gang(rank=2, others=(GangRank("mpi.1.1.0", 1, True),)),
        RETRIES,
        [],
    ),
    "a_rank_killed_by_a_user_stops_the_others_and_retries_nothing": (
        ended(S.KILLED, rank=1, asked=True, reason="killed by user"),
        gang(rank=1, others=(GangRank("mpi.1.0.0", 0, False),)),
        RETRIES,
        [StopGang("mpi.1", ("mpi.1.0.0",), False, STOPPED + "rank 1 was killed on request")],
    ),
    "rank_0_finishing_finishes_the_waiting_ranks": (
        ended(S.FINISHED, rank=0),
        gang(rank=0),
        RETRIES,
        [StopGang("mpi.1", ("mpi.1.1.0", "mpi.1.2.0"), True, "gang mpi.1 done: rank 0 finished")],
    ),
    "a_waiting_rank_that_finished_changes_nothing": (
        ended(S.FINISHED, rank=1, asked=True),
        gang(rank=1, others=(GangRank("mpi.1.2.0", 2, True),)),
        RETRIES,
        [],
    ),
    "when_every_rank_runs_the_command_the_gang_ends_with_its_last_rank": (
        ended(S.FINISHED, rank=0),
        gang(rank=0, every_rank=True),
        RETRIES,
        [],
    ),
    "a_gang_of_a_job_the_master_does_not_know_is_stopped_but_not_retried": (
        ended(S.ERROR, rank=3, reason="no such driver"),
        gang(rank=3, others=()),
        None,
        [],
    ),
}


@pytest.mark.parametrize(("task", "end", "settings", "effects"), CASES.values(), ids=CASES.keys())
def test_what_a_rank_s_end_does_to_its_gang(
    task: EndedTask,
    end: GangEnd,
    settings: RetrySettings | None,
    effects: list[StopGang | RetryGang],
) -> None:
    assert decide_gang(task, end, settings, NOW) == effects


def test_a_gang_fails_once_whatever_its_other_ranks_do_as_they_are_stopped() -> None:
    """rank 3 fails on its last attempt; then rank 0 (mpirun) fails too before its kill lands,
    and the waiting ranks end killed: one stop, no retry, and the run FAILED."""
    others = {r: GangRank(f"mpi.1.{r}.2", r, False) for r in (0, 1, 2)}
    first = decide_gang(
        ended(S.FAILED, rank=3, attempt=2), gang(3, tuple(others.values())), RETRIES, NOW
    )
    assert [type(e) for e in first] == [StopGang]
    stopping = tuple(GangRank(o.task_id, o.rank, True) for o in others.values())
    later = [
        decide_gang(
            ended(S.FAILED, rank=0, attempt=2, asked=True), gang(0, stopping[1:]), RETRIES, NOW
        ),
        decide_gang(
            ended(S.KILLED, rank=1, attempt=2, asked=True), gang(1, stopping[2:]), RETRIES, NOW
        ),
        decide_gang(ended(S.KILLED, rank=2, attempt=2, asked=True), gang(2, ()), RETRIES, NOW),
    ]
    assert later == [[], [], []]
    tally = RunTally(0, {S.FAILED: 2, S.KILLED: 2}, killed=3, gang=True, failed=1)
    assert run_outcome(tally) is RunState.FAILED


@pytest.mark.parametrize(
    ("tally", "outcome"),
    [
        pytest.param(
            RunTally(0, {S.KILLED: 4}, killed=4, gang=True),
            RunState.KILLED,
            id="a gang a user killed",
        ),
        pytest.param(
            RunTally(0, {S.FINISHED: 4}, killed=3, gang=True),
            RunState.SUCCEEDED,
            id="a gang whose waiting ranks finished with rank 0",
        ),
        pytest.param(
            RunTally(0, {S.FAILED: 1, S.KILLED: 3}, killed=3, failed=1),
            RunState.KILLED,
            id="an array a user killed after a failure stays KILLED",
        ),
    ],
)
def test_the_outcome_of_a_gang_s_run(tally: RunTally, outcome: RunState) -> None:
    assert run_outcome(tally) is outcome
