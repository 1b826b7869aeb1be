"""The agent's journal (``corral.agent.journal``): status updates kept on disk until the master
acknowledges them, with sequence numbers that never repeat."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.agent.journal import Journal
from corral.spec.protocol import StatusUpdate
from corral.spec.states import TaskState
from tests.support.disks import fill, small_disk


@contextmanager
def opened(path: Path) -> Iterator[Journal]:
    journal = Journal(path)
    try:
        yield journal
    finally:
        journal.close()


def record(journal: Journal, task_id: str = "job.1.0.0", state: str = "RUNNING") -> StatusUpdate:
    """Append the next update, numbered as the agent numbers them."""
    update = StatusUpdate(
        seq=journal.next_seq(), task_id=task_id, state=TaskState(state), time=1_800_000_000.5
    )
    journal.append(update)
    return update


def seqs(journal: Journal) -> list[int]:
    return [u.seq for u in journal.unacked()]


def test_a_new_journal_starts_at_one_with_nothing_pending(tmp_path: Path) -> None:
    with opened(tmp_path / "agent" / "journal.jsonl") as j:
        assert j.next_seq() == 1 and j.unacked() == []


def test_updates_survive_a_reopen_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        sent = [record(j, f"job.1.{i}.0", state) for i, state in enumerate(["STARTING", "FAILED"])]
        sent.append(
            StatusUpdate(
                seq=j.next_seq(), task_id="x", state=TaskState.FAILED, time=2.0, exit_code=3
            )
        )
        j.append(sent[-1])
    with opened(path) as j:
        assert j.unacked() == sent
        assert j.next_seq() == 4


def test_an_ack_drops_every_update_up_to_it_and_that_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        for _ in range(5):
            record(j)
        j.ack(3)
        assert seqs(j) == [4, 5]
    with opened(path) as j:
        assert seqs(j) == [4, 5]
        j.ack(5)
        assert j.unacked() == []
    with opened(path) as j:
        assert j.unacked() == [] and j.next_seq() == 6


def test_an_old_or_repeated_ack_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        for _ in range(4):
            record(j)
        j.ack(2)
        size = path.stat().st_size
        j.ack(2)
        j.ack(1)
        assert seqs(j) == [3, 4] and path.stat().st_size == size


def test_seqs_never_repeat_across_reopens_even_when_everything_was_acked(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    used: list[int] = []
    for _ in range(3):
        with opened(path) as j:
            used += [record(j).seq, record(j).seq]
            j.ack(used[-1])
    assert used == [1, 2, 3, 4, 5, 6]


def test_compaction_keeps_what_is_pending_and_seqs_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        for _ in range(1200):
            record(j)
        full = path.stat().st_size
        for seq in range(1, 1101):  # one ack per update: well over 1000 dead lines
            j.ack(seq)
        assert path.stat().st_size < full / 5, "the file was not rewritten"
        assert seqs(j) == list(range(1101, 1201))
        assert record(j).seq == 1201
    with opened(path) as j:
        assert seqs(j) == list(range(1101, 1202))
        assert j.next_seq() == 1202


def test_seqs_never_repeat_after_a_compaction_that_left_nothing_pending(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        for _ in range(1100):
            record(j)
        j.ack(1100)  # one ack that kills 1100 lines: the file is rewritten as just that ack
        assert len(path.read_text().splitlines()) == 1, "the file was not rewritten"
    with opened(path) as j:
        assert j.unacked() == []
        assert record(j).seq == 1101


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        kept = [record(j), record(j)]
    with path.open("a") as f:
        f.write('{"update":{"type":"status","seq":3,"task_id":"jo')  # the agent died here
    with opened(path) as j:
        assert j.unacked() == kept
        assert j.next_seq() == 3  # seq 3 was never sent: it never reached the master


def test_an_update_written_after_a_torn_line_survives_the_next_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with opened(path) as j:
        record(j)
    with path.open("a") as f:
        f.write('{"update":{"type":"status","seq":2,"task_id":"jo')
    with opened(path) as j:
        after = record(j, "job.1.1.0", "FINISHED")  # may reach the master before the next crash
    with opened(path) as j:
        assert after in j.unacked()
        assert j.next_seq() == after.seq + 1


# --- a property: any history of appends, acks and restarts


Step = tuple[str, int]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 3)),
        st.tuples(st.just("ack"), st.integers(0, 6)),  # how far back from the newest seq
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(STEPS)
def test_after_any_history_pending_is_what_was_not_acked_and_seqs_are_fresh(
    steps: list[Step],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.jsonl"
        j = Journal(path)
        used: list[int] = []
        acked = 0
        try:
            for op, n in steps:
                if op == "append":
                    used += [record(j).seq for _ in range(n)]
                elif op == "ack" and used:
                    acked = max(acked, used[-1] - n)
                    j.ack(used[-1] - n)
                elif op == "reopen":
                    j.close()
                    j = Journal(path)
                assert seqs(j) == [s for s in used if s > acked]
            assert used == sorted(set(used)), "a seq was used twice"
            assert j.next_seq() > max(used, default=0)
        finally:
            j.close()


def test_a_full_disk_never_tears_a_line_and_keeps_every_update(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 64) as disk:
        path = disk / "journal.jsonl"
        with opened(path) as journal:
            record(journal)
            filler = fill(disk)
            # Longer than what is left of the file's last page: the disk takes only a part of it.
            journal.append(
                StatusUpdate(
                    seq=journal.next_seq(),
                    task_id="job.1.0.0",
                    state=TaskState.FAILED,
                    time=1_800_000_000.5,
                    reason="x" * 8000,
                )
            )
            record(journal, "job.1.1.0", "FINISHED")
            for line in path.read_text().splitlines():
                json.loads(line)  # every line on disk is whole
            assert seqs(journal) == [1, 2, 3]  # kept in memory, and sent from there
            filler.unlink()
            record(journal, "job.1.2.0")
        with opened(path) as reopened:
            assert seqs(reopened) == [1, 2, 3, 4]
            assert reopened.unacked()[1].reason == "x" * 8000
