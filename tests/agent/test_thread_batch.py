"""Blocking calls made in one turn of the loop share one worker-thread hop; each caller gets its
own result or exception, and the loop's thread never runs them."""

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

    def counted(calls: list[Any]) -> list[tuple[bool, Any]]:
        hops.append(len(calls))
        return real(calls)

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
