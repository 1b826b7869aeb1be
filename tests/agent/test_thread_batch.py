"""Blocking calls made in one turn of the loop share one worker-thread hop; each caller gets its
own result or exception, all of them in one wake of the loop once the hop is done, and the
loop's thread never runs them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from corral.agent import thread_batch
from corral.agent.thread_batch import ThreadBatch


def test_calls_of_one_turn_share_a_hop_in_order_each_with_its_own_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hops: list[int] = []
    real = thread_batch._run_all

    def counted(calls: list[Any], loop: asyncio.AbstractEventLoop) -> None:
        hops.append(len(calls))
        real(calls, loop)

    monkeypatch.setattr(thread_batch, "_run_all", counted)
    ran: list[tuple[int, int]] = []

    def work(n: int) -> int:
        ran.append((n, threading.get_ident()))
        if n == 3:
            raise ValueError("three")
        return n * 10

    async def scenario() -> None:
        batch = ThreadBatch()
        outcomes = await asyncio.gather(
            *(batch.run(work, n) for n in range(5)), return_exceptions=True
        )
        assert outcomes[:3] == [0, 10, 20] and outcomes[4] == 40
        assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "three"
        assert await batch.run(work, 7) == 70  # a later turn: a hop of its own

    asyncio.run(scenario())
    assert hops == [5, 1]
    assert [n for n, _ in ran] == [0, 1, 2, 3, 4, 7]
    assert threading.get_ident() not in {thread for _, thread in ran}


def test_the_callers_of_a_hop_hear_of_their_outcomes_together_in_one_wake_of_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes: list[int] = []
    real = thread_batch._settle_all

    def counted(outcomes: list[Any]) -> None:
        wakes.append(len(outcomes))
        real(outcomes)

    monkeypatch.setattr(thread_batch, "_settle_all", counted)
    happened: list[str] = []

    def work(n: int) -> int:
        happened.append(f"ran {n}")
        return n

    async def scenario() -> None:
        batch = ThreadBatch()

        async def call(n: int) -> None:
            assert await batch.run(work, n) == n
            happened.append(f"heard {n}")

        await asyncio.gather(*(call(n) for n in range(4)))

    asyncio.run(scenario())
    assert wakes == [4]
    assert happened[:4] == [f"ran {n}" for n in range(4)]  # nobody heard before all had run
