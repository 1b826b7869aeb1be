"""Leading, following and stepping down: the lease kept in a thread of its own.

A master starts as a candidate. A thread looks at the lease every third of it: a master takes
the lead when nobody holds a running lease (``policy.leadership.lease_decision``), the leader
renews it, the others follow whoever holds it. The thread is apart from the event loop so
that a busy loop does not cost the leader its lease; what follows from a change of role (loading
the state, starting or stopping the loops) is handed to the loop, in order.

A leader that has not renewed within ``STEP_DOWN_AT`` of its lease, by its own monotonic clock,
steps down (the thread finds out at its next look; ``check`` lets the loop find out too while
the thread waits on an unreachable database): from then on its store writes nothing, even
before the loop has stopped what it was doing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, replace

from corral.clock import Clock
from corral.master.policy.leadership import (
    Decision,
    Lease,
    Me,
    Now,
    held_until,
    lapsed,
    lease_decision,
    renew_every,
)
from corral.store.lease import LeaseRow
from corral.store.store import Store, StoreFull, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """A change of role, for the event loop: ``epoch`` set when we took the lead, else we
    stepped down (``reason``)."""

    epoch: int | None
    reason: str = ""


def this_process() -> str:
    """The holder name of this process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(holder: str) -> bool:
    """Whether ``holder`` names a process of this host that no longer exists (a master killed
    and started again here, at the same address, need not wait for its old lease to run
    out)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Leadership:
    """This master's part in the lease: whether it leads, and who does."""

    def __init__(self, store: Store, clock: Clock, url: str, seconds: float) -> None:
        self.store = store
        self.store.resign()  # a candidate writes nothing until it leads
        self.clock = clock
        self.url = url  # where this master answers, as others reach it
        self.seconds = seconds
        self.me = Me(this_process())
        self.leader_url: str | None = None  # who leads, as last seen (None: nobody now)
        self.changes: asyncio.Queue[Change] = asyncio.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # look at the lease now (we just stepped down)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def leading(self) -> bool:
        """Whether this master leads now."""
        return self.me.epoch is not None

    def start(self) -> None:
        """Begin looking at the lease (from the event loop that will handle the changes)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking; a leader ends its lease, so another master takes over at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            if self.me.epoch is not None:
                try:
                    self.store.resign(self.me.holder)
                except (StoreUnavailable, StoreFull) as e:
                    log.warning("could not end the lease (%s); it runs out by itself", e)
                self.me = Me(self.me.holder)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.look()
            except Exception:
                log.exception("looking at the lease failed")
            self._wake.wait(renew_every(self.seconds, self.leading))
            self._wake.clear()

    def look(self) -> Decision | None:
        """Read the lease and do what it calls for; answers the decision (None: the store did
        not answer). The store is called outside the lock: the loop may step us down
        meanwhile (``check``, ``lost``), and then what the call found out is dropped."""
        started = self.clock.monotonic()
        me = self.me
        renewed, epoch = False, None
        try:
            row, now = self.store.read_lease()
            decision = lease_decision(self._facts(row), me, Now(now, started))
            if decision is Decision.RENEW:
                renewed = self.store.renew_lease(me.holder, self.seconds)
            elif decision is Decision.TAKE:
                epoch = self.store.take_lease(me.holder, self.url, self.seconds, self._may_take)
        except (StoreUnavailable, StoreFull) as e:
            self.check(f"could not renew the lease: {e}")
            return None
        with self._lock:
            if self.me is not me:
                return decision
            if decision is Decision.RENEW and renewed:
                self.me = replace(me, held_until=held_until(started, self.seconds))
            elif decision is Decision.RENEW:
                self._step_down("another master took the lead")
            elif decision is Decision.TAKE and epoch is not None:
                self.me = Me(me.holder, epoch, held_until(started, self.seconds))
                log.warning("leading at epoch %d (%s)", epoch, self.url)
                self._tell(Change(epoch))
            elif decision is Decision.STEP_DOWN:
                self._step_down(self._why(row, started))
            self.leader_url = self._leader(row, now)
        return decision

    def check(self, reason: str) -> None:
        """Step down if our time to renew ran out (``reason`` says why we could not)."""
        with self._lock:
            if lapsed(self.me, self.clock.monotonic()):
                self._step_down(reason)
                self.leader_url = None

    def lost(self, reason: str) -> None:
        """The store refused a write of ours (a newer epoch leads): step down."""
        with self._lock:
            if self.me.epoch is not None:
                self._step_down(reason)

    def _leader(self, row: LeaseRow | None, now: float) -> str | None:
        if self.leading:
            return self.url
        if row is None or now >= row.expires_at:
            return None  # its lease ran out: nobody leads until another takes it
        return row.url or None

    def _facts(self, row: LeaseRow | None) -> Lease | None:
        if row is None:
            return None
        # Only a process at our own address counts as ourselves killed and started again.
        gone = row.url == self.url and holder_gone(row.holder)
        return Lease(row.epoch, row.holder, row.url, row.expires_at, gone)

    def _may_take(self, row: LeaseRow | None, now: float) -> bool:
        """The decision again, on the row once locked."""
        now_ = Now(now, self.clock.monotonic())
        return lease_decision(self._facts(row), self.me, now_) is Decision.TAKE

    def _step_down(self, reason: str) -> None:
        self.store.resign()  # before anything else: not one more write
        log.error("stepping down from epoch %s: %s", self.me.epoch, reason)
        self.me = Me(self.me.holder)
        self._tell(Change(None, reason))
        self._wake.set()  # find out who leads now, without waiting for the next look

    def _why(self, row: LeaseRow | None, started: float) -> str:
        if lapsed(self.me, started):
            return "the lease was not renewed in time"
        if row is not None:
            return f"epoch {row.epoch} leads now ({row.url or row.holder})"
        return "the lease is gone"

    def _tell(self, change: Change) -> None:
        loop = self._loop
        if loop is None:
            self.changes.put_nowait(change)
            return
        try:
            loop.call_soon_threadsafe(self.changes.put_nowait, change)
        except RuntimeError:
            pass  # the loop is closed: the process is ending
