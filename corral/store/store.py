"""The store: one engine, transactions, and the queries the master and the API need.

The master is the only writer. Each change of state is one transaction (``Store.tx``) that also
appends its events; the master publishes those events only after the commit, so nothing a client
sees was not stored first.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError

from corral.store import lease
from corral.store.accounting import archive, usage_query
from corral.store.bulk import RunCounts, insert_many, insert_numbered, update_many
from corral.store.engines import open_engine
from corral.store.errors import (
    Fenced,
    Refusal,
    StoreFull,
    StoreUnavailable,
    is_full,
    is_unavailable,
    why_unavailable,
)
from corral.store.schema import (
    FAILURES,
    agents,
    deployments,
    events,
    jobs,
    leadership,
    retired_jobs,
    runs,
    service_versions,
    services,
    tasks,
    tokens,
)

# The store's errors are raised from here, so callers import them from here too.
__all__ = ["Fenced", "Refusal", "Store", "StoreFull", "StoreUnavailable", "Tx", "hash_token"]

MIGRATIONS = Path(__file__).parent / "migrations"
ACTIVE_STATES = ("PENDING", "STAGING", "STARTING", "RUNNING")
JSON_TEXT = ("launch", "placement", "ports", "devices")  # of TaskRow.values(), as JSON text
TaskCounts = Counter[tuple[str, str]]  # tasks per (owner, state)
Seqs = Callable[[Connection, int], int]  # n creation numbers for new tasks -> the first


# Written as the driver's SQL: every write transaction runs one (SQLAlchemy's execution of even
# a statement built once costs more than the database's work on it). SQLite locks the whole
# database for a writer: an UPDATE takes that lock at once. PostgreSQL locks the row, which a
# master taking the lead (FOR UPDATE) waits for.
_FENCE = "UPDATE leadership SET epoch = epoch WHERE id = 1 AND epoch = {mark}"
_FENCE_POSTGRES = "SELECT epoch FROM leadership WHERE id = 1 AND epoch = {mark} FOR NO KEY UPDATE"
# Every message of status updates from an agent runs it.
_AGENT_SEQ = "UPDATE agents SET last_seq = {mark} WHERE id = {mark}"


def _sql(conn: Connection, text: str) -> str:
    """``text`` with the driver's parameter marks."""
    return text.replace("{mark}", "?" if conn.dialect.paramstyle == "qmark" else "%s")


# The PostgreSQL advisory lock masters take turns on to migrate (any number of Corral's own).
_MIGRATING = 0x636F7272616C  # "corral"


def hash_token(token: str) -> str:
    """Tokens are random, so a plain sha256 is enough to avoid storing them readable."""
    return hashlib.sha256(token.encode()).hexdigest()


_EVENT_DEFAULTS: dict[str, Any] = {
    "job": None,
    "run": None,
    "task_id": None,
    "agent_id": None,
    "state": None,
    "reason": "",
    "data": {},
}


class Tx:
    """The writes of one transaction. Events added here are published after the commit.

    Task updates and events, the hot path, are collected and written in bulk (one statement
    per kind) when the transaction ends or before any other statement runs, so the order of
    effects is as if each were written at once.
    """

    def __init__(self, conn: Connection, seqs: Seqs) -> None:
        self._conn = conn
        self._seqs = seqs
        self.events: list[dict[str, Any]] = []
        self._new_events: list[dict[str, Any]] = []
        self._task_updates: dict[str, dict[str, Any]] = {}
        self._run_counts = RunCounts()
        # Tasks per (owner, state) added here (removed: negative); the master's counts in
        # memory follow them once this has committed.
        self.task_counts: TaskCounts = Counter()

    @property
    def conn(self) -> Connection:
        """The connection, with every deferred write done."""
        self.flush()
        return self._conn

    def flush(self) -> None:
        """Write the collected task updates and events."""
        if self._task_updates:
            changes, self._task_updates = self._task_updates, {}
            update_many(self._conn, tasks, "id", changes, json_columns=("ports", "devices"))
        self._run_counts.write(self._conn)
        if self._new_events:
            rows, self._new_events = self._new_events, []
            ids = insert_numbered(self._conn, events, rows, json_columns=("data",))
            for row, event_id in zip(rows, ids, strict=True):
                row["id"] = event_id  # the rows are this transaction's own copies
            self.events.extend(rows)

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append events (time, type, job, run, task_id, agent_id, state, reason, data)."""
        # Every row gets every column: a bulk insert takes its columns from the first row.
        self._new_events.extend({**_EVENT_DEFAULTS, **r} for r in rows)

    def add_event(self, **row: Any) -> None:
        """Append one event."""
        self.add_events([row])

    def delete_event(self, event_id: int) -> None:
        """Remove an event that a newer one replaces (a skip record whose count grew)."""
        self.conn.execute(delete(events).where(events.c.id == event_id))

    def insert_job(self, **row: Any) -> None:
        """Store a new job."""
        self.conn.execute(insert(jobs).values(**row))

    def update_job(self, name: str, **values: Any) -> None:
        """Change fields of a job."""
        self.conn.execute(update(jobs).where(jobs.c.name == name).values(**values))

    def delete_job(self, name: str) -> None:
        """Remove a job with its runs and tasks; its events stay in the log, and its newest
        run number among the retired (see ``retired_runs``)."""
        runs_used = self.conn.execute(select(jobs.c.runs).where(jobs.c.name == name)).scalar()
        self.conn.execute(delete(retired_jobs).where(retired_jobs.c.name == name))
        self.conn.execute(insert(retired_jobs).values(name=name, runs=runs_used or 0))
        self._delete_tasks(tasks.c.job == name)
        self.conn.execute(delete(runs).where(runs.c.job == name))
        self.conn.execute(delete(jobs).where(jobs.c.name == name))

    def retired_runs(self, name: str) -> int:
        """The newest run number a deleted job of this name reached (0 if none was deleted)."""
        stmt = select(retired_jobs.c.runs).where(retired_jobs.c.name == name)
        return int(self.conn.execute(stmt).scalar() or 0)

    def job(self, name: str) -> RowMapping | None:
        """A job as this transaction sees it."""
        return self.conn.execute(select(jobs).where(jobs.c.name == name)).mappings().first()

    def last_run_start(self, job: str) -> float | None:
        """When the job's newest run was created, as this transaction sees it."""
        stmt = select(func.max(runs.c.created_at)).where(runs.c.job == job)
        value = self.conn.execute(stmt).scalar()
        return None if value is None else float(value)

    def insert_run(self, **row: Any) -> None:
        """Store a new run."""
        self.conn.execute(insert(runs).values(**row))

    def update_run(self, job: str, number: int, **values: Any) -> None:
        """Change fields of a run."""
        cond = (runs.c.job == job) & (runs.c.number == number)
        self.conn.execute(update(runs).where(cond).values(**values))

    def insert_tasks(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store new PENDING tasks: rows of ``TaskRow.values()`` (JSON columns as JSON text),
        numbered in creation order here; their runs' counts follow."""
        if not rows:
            return
        first = self._seqs(self.conn, len(rows))
        insert_many(self._conn, tasks, rows, JSON_TEXT, numbered=("seq", first))
        runs = Counter((r["owner"], r["job"], r["run"]) for r in rows)
        for (owner, job, run), n in runs.items():
            self.task_counts[(owner, "PENDING")] += n
            if not job.startswith("/"):  # a service's tasks have no run to count in
                self._run_counts.move(job, run, None, "PENDING", n)

    def task_moved(self, job: str, run: int, owner: str, old: str, new: str) -> None:
        """Count a task of ``owner`` (the newest attempt of its slot) that went from state
        ``old`` to ``new``; its row is changed by ``update_task``."""
        self.task_counts[(owner, old)] -= 1
        self.task_counts[(owner, new)] += 1
        if not job.startswith("/"):
            self._run_counts.move(job, run, old, new)

    def superseded(self, task_id: str, job: str, run: int, state: str) -> None:
        """A task in ``state`` is no longer the newest attempt of its slot: its retry is."""
        self.update_task(task_id, latest=False)
        self._run_counts.move(job, run, state, None)

    def _delete_tasks(self, cond: Any) -> None:
        """Delete the tasks matching ``cond``, uncounting them."""
        stmt = select(tasks.c.owner, tasks.c.state, func.count()).where(cond)
        for owner, state, n in self.conn.execute(stmt.group_by(tasks.c.owner, tasks.c.state)):
            self.task_counts[(owner, state)] -= n
        self.conn.execute(archive(cond))  # what they used stays counted
        self.conn.execute(delete(tasks).where(cond))

    def update_task(self, task_id: str, **values: Any) -> None:
        """Change fields of a task (later changes of one field in a transaction win)."""
        self._task_updates.setdefault(task_id, {}).update(values)

    def upsert_agent(self, agent_id: str, **values: Any) -> None:
        """Create the agent row or change it."""
        found = self.conn.execute(select(agents.c.id).where(agents.c.id == agent_id)).first()
        if found is None:
            self.conn.execute(insert(agents).values(id=agent_id, **values))
        else:
            self.conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))

    def place_tasks(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Mark PENDING tasks STAGING on their agents: rows of ``task_id``, ``job``, ``run``,
        ``owner``, ``agent_id`` and ``devices`` (the GPU indices it was given there)."""
        if rows:
            stmt = (
                update(tasks)
                .where(tasks.c.id == bindparam("b_task"))
                .values(
                    state="STAGING",
                    agent_id=bindparam("b_agent"),
                    reason="",
                    devices=bindparam("b_devices"),
                )
            )
            params = [
                {
                    "b_task": r["task_id"],
                    "b_agent": r["agent_id"],
                    "b_devices": list(r.get("devices", ())) or None,
                }
                for r in rows
            ]
            self.conn.execute(stmt, params)
            for r in rows:
                self.task_moved(r["job"], r["run"], r["owner"], "PENDING", "STAGING")

    def run_outcome(self, job: str, number: int) -> tuple[dict[str, int], int]:
        """Newest-attempt tasks of a run per state, and how many of them a user killed."""
        cond = (tasks.c.job == job) & (tasks.c.run == number) & tasks.c.latest
        stmt = select(tasks.c.state, tasks.c.kill_requested, func.count()).where(cond)
        counts: dict[str, int] = {}
        killed = 0
        for state, kill_requested, n in self.conn.execute(
            stmt.group_by(tasks.c.state, tasks.c.kill_requested)
        ):
            counts[state] = counts.get(state, 0) + n
            killed += n if kill_requested else 0
        return counts, killed

    def unasked_failures(self, job: str, number: int) -> int:
        """Newest-attempt tasks of a run that ended other than FINISHED without being asked to
        stop (a gang's run fails for them, whatever the ranks stopped for them did)."""
        cond = (tasks.c.job == job) & (tasks.c.run == number) & tasks.c.latest
        cond &= tasks.c.state.not_in(ACTIVE_STATES + ("FINISHED",)) & ~tasks.c.kill_requested
        return int(self.conn.execute(select(func.count()).where(cond)).scalar_one())

    def attempt_tasks(self, job: str, number: int, attempt: int) -> list[RowMapping]:
        """The tasks of one attempt of a run (a gang's ranks, retried together), by slot."""
        cond = (tasks.c.job == job) & (tasks.c.run == number) & (tasks.c.attempt == attempt)
        return list(self.conn.execute(select(tasks).where(cond).order_by(tasks.c.slot)).mappings())

    # --- services and deployments

    def insert_service(self, **row: Any) -> None:
        """Store a new service."""
        self.conn.execute(insert(services).values(**row))

    def update_service(self, service_id: str, **values: Any) -> None:
        """Change fields of a service."""
        self.conn.execute(update(services).where(services.c.id == service_id).values(**values))

    def delete_service(self, service_id: str) -> None:
        """Remove a service, its versions and its finished tasks; its events stay in the log."""
        done = tasks.c.state.not_in(ACTIVE_STATES)
        self._delete_tasks((tasks.c.job == service_id) & done)
        self.conn.execute(delete(service_versions).where(service_versions.c.service == service_id))
        self.conn.execute(delete(services).where(services.c.id == service_id))

    def service(self, service_id: str) -> RowMapping | None:
        """A service as this transaction sees it."""
        stmt = select(services).where(services.c.id == service_id)
        return self.conn.execute(stmt).mappings().first()

    def insert_service_version(self, **row: Any) -> None:
        """Keep a version of a service's spec."""
        self.conn.execute(insert(service_versions).values(**row))

    def insert_deployment(self, **row: Any) -> None:
        """Store a new deployment."""
        self.conn.execute(insert(deployments).values(**row))

    def update_deployment(self, deployment_id: str, **values: Any) -> None:
        """Change fields of a deployment."""
        cond = deployments.c.id == deployment_id
        self.conn.execute(update(deployments).where(cond).values(**values))

    def set_agent_seq(self, agent_id: str, seq: int) -> None:
        """Record the newest status update applied for an agent."""
        self.conn.exec_driver_sql(_sql(self._conn, _AGENT_SEQ), (seq, agent_id))

    def add_token(
        self,
        token: str,
        user: str,
        role: str,
        now: float,
        *,
        token_id: str | None = None,
        name: str = "",
        expires_at: float | None = None,
    ) -> None:
        """Store a token (only its hash), named by ``token_id`` (random if not given)."""
        row = {
            "hash": hash_token(token),
            "id": token_id or secrets.token_hex(6),
            "user": user,
            "role": role,
            "name": name,
            "created_at": now,
            "expires_at": expires_at,
        }
        self.conn.execute(insert(tokens).values(**row))


@contextmanager
def _refusals() -> Iterator[None]:
    """Say why the database refused, as the API answers it (503): a full disk, or a database
    that cannot be reached. Any other error is the statement's, and passes unchanged."""
    try:
        yield
    except DBAPIError as exc:
        if is_full(exc):
            raise StoreFull() from exc
        if is_unavailable(exc):
            raise StoreUnavailable(why_unavailable(exc)) from exc
        raise


def _finds_nothing(exc: DataError) -> bool:
    """Whether a lookup failed only for asking for text with a NUL byte, which PostgreSQL
    cannot hold: nothing stored holds one (admission refuses them), so nothing matches."""
    return "NUL (0x00)" in str(exc.orig)


class Store:
    """The state store on SQLite (default) or PostgreSQL."""

    def __init__(self, url: str) -> None:
        """Open the store at a database URL (see ``engines.database_url``); nothing is
        connected before the first call. Raises ``StoreUnusable`` for a URL it cannot use."""
        self.url = url
        self.engine: Engine = open_engine(url)
        self.epoch: int | None = None  # set by take_lead(); then every write is fenced by it
        # False while this master follows (or stepped down): it then writes nothing at all.
        self.may_write = True
        # The newest task's creation number: read from the store at the first insert (after
        # taking the lead, when another master may have written), then counted on here.
        self._last_seq: int | None = None
        self._seq_lock = threading.Lock()

    @classmethod
    def in_dir(cls, data_dir: Path) -> Store:
        """The default store: ``state.db`` in the data dir."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{data_dir / 'state.db'}")

    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent). Masters starting together
        take turns: the first migrates, the others then find nothing to do."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with _refusals(), self.engine.begin() as conn:
            # Held until the commit, taken before alembic reads the store's version.
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATING})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def take_lead(self, holder: str, now: float) -> int:
        """Become the master that writes whatever the lease says (tests, and a master that
        is alone): the next epoch is ours, and every later write of a master holding an older
        one is refused (``Fenced``). Answers the new epoch."""
        taken = self.take_lease(holder, "", 0.0, lambda _row, _now: True)
        assert taken is not None
        return taken

    def read_lease(self) -> tuple[lease.LeaseRow | None, float]:
        """The leadership row (None before any master led) and the store's clock."""
        with _refusals(), self.engine.connect() as conn:
            return lease.read(conn), lease.store_now(conn)

    def take_lease(
        self, holder: str, url: str, seconds: float, may_take: lease.MayTake
    ) -> int | None:
        """Take the lead for ``seconds`` in one transaction if ``may_take`` agrees with the
        row once locked: the next epoch is ours, and every later write of a master holding an
        older one is refused (``Fenced``). Answers the new epoch, or None."""
        with _refusals(), self.engine.begin() as conn:
            epoch = lease.take(conn, holder, url, seconds, may_take)
            if epoch is None:
                conn.rollback()
                return None
        self.epoch = epoch
        self.may_write = True
        self._last_seq = None
        return epoch

    def renew_lease(self, holder: str, seconds: float) -> bool:
        """Extend our lease to ``seconds`` from now; False if it is no longer ours."""
        if self.epoch is None:
            return False
        with _refusals(), self.engine.begin() as conn:
            return lease.renew(conn, self.epoch, holder, seconds)

    def resign(self, holder: str | None = None) -> None:
        """Write nothing more (a follower, or a leader stepping down); with ``holder``, also
        end our lease in the store so that another master takes over at once."""
        self.may_write = False
        if holder is not None and self.epoch is not None:
            with _refusals(), self.engine.begin() as conn:
                lease.release(conn, self.epoch, holder)

    def _next_seqs(self, conn: Connection, n: int) -> int:
        """Creation numbers for ``n`` new tasks; answers the first."""
        with self._seq_lock:
            if self._last_seq is None:
                self._last_seq = int(conn.execute(select(func.max(tasks.c.seq))).scalar() or 0)
            first = self._last_seq + 1
            self._last_seq += n
            return first

    def _fence(self, conn: Connection) -> None:
        """Refuse to write unless our epoch still leads. An UPDATE, not a read: it takes the
        row's write lock, so no newer master can take the lead until this transaction ends."""
        if not self.may_write:
            raise Fenced(self.epoch, None)
        if self.epoch is None:
            return
        if conn.dialect.name == "postgresql":
            still = len(conn.exec_driver_sql(_sql(conn, _FENCE_POSTGRES), (self.epoch,)).all())
        else:
            still = conn.exec_driver_sql(_sql(conn, _FENCE), (self.epoch,)).rowcount
        if still != 1:
            newest = conn.execute(select(leadership.c.epoch)).scalar()
            raise Fenced(self.epoch, newest)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """One write transaction, fenced by this master's epoch: commits on normal exit, rolls
        back on an exception.

        Raises ``Fenced`` when a newer master leads, ``StoreFull`` when the disk is full and
        ``StoreUnavailable`` when the database cannot be reached (the transaction is then
        rolled back, or was never begun).
        """
        with _refusals(), self.engine.begin() as conn:
            self._fence(conn)
            tx = Tx(conn, self._next_seqs)
            yield tx
            tx.flush()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with _refusals(), self.engine.connect() as conn:
            yield conn

    def _all(self, stmt: Any) -> list[RowMapping]:
        try:
            with self._reading() as conn:
                return list(conn.execute(stmt).mappings().all())
        except DataError as exc:
            if _finds_nothing(exc):
                return []
            raise

    def _one(self, stmt: Any) -> RowMapping | None:
        rows = self._all(stmt.limit(1))
        return rows[0] if rows else None

    # --- jobs and runs

    def job(self, name: str) -> RowMapping | None:
        """One job, or None."""
        return self._one(select(jobs).where(jobs.c.name == name))

    def jobs(
        self,
        owner: str | None = None,
        q: str | None = None,
        *,
        limit: int | None = None,
        after: tuple[float, str] | None = None,
    ) -> list[RowMapping]:
        """Jobs, newest first (then by name), optionally of one owner or whose name contains
        ``q``; at most ``limit``, those after the job created at ``after[0]`` named
        ``after[1]``."""
        stmt = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.name)
        if owner is not None:
            stmt = stmt.where(jobs.c.owner == owner)
        if q:
            stmt = stmt.where(jobs.c.name.contains(q, autoescape=True))
        if after is not None:
            at, name = after
            stmt = stmt.where(
                (jobs.c.created_at < at) | ((jobs.c.created_at == at) & (jobs.c.name > name))
            )
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._all(stmt)

    def runs(self, job: str, number: int | None = None) -> list[RowMapping]:
        """Runs of a job, newest first (or just run ``number``)."""
        stmt = select(runs).where(runs.c.job == job).order_by(runs.c.number.desc())
        if number is not None:
            stmt = stmt.where(runs.c.number == number)
        return self._all(stmt)

    def due_jobs(self, now: float) -> list[RowMapping]:
        """Jobs whose next firing is at or before ``now``."""
        stmt = select(jobs).where(jobs.c.next_due <= now).order_by(jobs.c.next_due)
        return self._all(stmt)

    def earliest_due(self) -> float | None:
        """When the next scheduled firing of any job is due."""
        with self._reading() as conn:
            value = conn.execute(select(func.min(jobs.c.next_due))).scalar()
        return None if value is None else float(value)

    def unfinished_runs(self) -> list[RowMapping]:
        """Runs without an outcome yet."""
        return self._all(select(runs).where(runs.c.finished_at.is_(None)))

    def task_counts(self) -> TaskCounts:
        """Tasks per (owner, state), counted in the store (once, at start: the master keeps
        them since)."""
        stmt = select(tasks.c.owner, tasks.c.state, func.count())
        with self._reading() as conn:
            found = conn.execute(stmt.group_by(tasks.c.owner, tasks.c.state)).all()
        return Counter({(owner, state): n for owner, state, n in found})

    # --- tasks

    def task(self, task_id: str) -> RowMapping | None:
        """One task, or None."""
        return self._one(select(tasks).where(tasks.c.id == task_id))

    def tasks(
        self,
        *,
        state: str | None = None,
        job: str | None = None,
        run: int | None = None,
        agent: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> list[RowMapping]:
        """Tasks matching every given filter, in creation order: at most ``limit``, those
        created after the one whose ``seq`` is ``after`` (a page's cursor). Each filter has an
        index ending in ``seq``, so a page costs its rows, not the tasks before it."""
        stmt = select(tasks).order_by(tasks.c.seq)
        if after is not None:
            stmt = stmt.where(tasks.c.seq > after)
        if owner is not None:
            stmt = stmt.where(tasks.c.owner == owner)
        if state is not None:
            stmt = stmt.where(tasks.c.state == state)
        if job is not None:
            stmt = stmt.where(tasks.c.job == job)
        if run is not None:
            stmt = stmt.where(tasks.c.run == run)
        if agent is not None:
            stmt = stmt.where(tasks.c.agent_id == agent)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._all(stmt)

    def tasks_by_id(self, ids: Sequence[str]) -> list[RowMapping]:
        """The tasks of these ids that exist, in creation order."""
        found: list[RowMapping] = []
        for i in range(0, len(ids), 500):  # within every driver's limit of parameters
            found += self._all(select(tasks).where(tasks.c.id.in_(ids[i : i + 500])))
        return sorted(found, key=lambda r: int(r["seq"]))

    def failures(self, limit: int, owner: str | None = None) -> list[RowMapping]:
        """The tasks that ended FAILED, LOST or ERROR most recently, newest first."""
        stmt = select(tasks).where(text(FAILURES)).order_by(tasks.c.finished_at.desc())
        if owner is not None:
            stmt = stmt.where(tasks.c.owner == owner)
        return self._all(stmt.limit(limit))

    def usage_rows(self, since: float, until: float, owner: str | None = None) -> list[RowMapping]:
        """The task attempts that ran within ``[since, until)`` or ended in it (of ``owner``),
        deleted ones too: owner, group (of the job or service, else the owner's primary
        group), state, cpus, mem, gpus, started_at, finished_at, preempted_by. Accounting reads
        them all: no index serves a window, so this is a scan of the tasks."""
        return self._all(usage_query(since, until, owner))

    def active_tasks(self) -> list[RowMapping]:
        """Tasks that are not in a terminal state, their ``launch`` and ``placement`` as the JSON
        text they are stored as: a master taking the lead validates each launch straight from
        it (``TaskRow.stored``), which costs a fraction of decoding it into Python first."""
        as_stored = [cast(tasks.c[name], Text).label(name) for name in ("launch", "placement")]
        columns = [c for c in tasks.c if c.name not in ("launch", "placement")]
        return self._all(select(*columns, *as_stored).where(tasks.c.state.in_(ACTIVE_STATES)))

    def task_events(self, task_id: str) -> list[RowMapping]:
        """The state history of a task, oldest first."""
        stmt = (
            select(events)
            .where((events.c.task_id == task_id) & (events.c.type == "task_state"))
            .order_by(events.c.id)
        )
        return self._all(stmt)

    # --- services and deployments

    def service(self, service_id: str) -> RowMapping | None:
        """One service, or None."""
        return self._one(select(services).where(services.c.id == service_id))

    def services(self) -> list[RowMapping]:
        """Every service, by id."""
        return self._all(select(services).order_by(services.c.id))

    def service_versions(self, service_id: str) -> list[RowMapping]:
        """The versions of a service, newest first."""
        stmt = (
            select(service_versions)
            .where(service_versions.c.service == service_id)
            .order_by(service_versions.c.created_at.desc(), service_versions.c.version.desc())
        )
        return self._all(stmt)

    def service_version(self, service_id: str, version: str) -> RowMapping | None:
        """One version of a service, or None."""
        cond = (service_versions.c.service == service_id) & (service_versions.c.version == version)
        return self._one(select(service_versions).where(cond))

    def deployment(self, deployment_id: str) -> RowMapping | None:
        """One deployment, or None."""
        return self._one(select(deployments).where(deployments.c.id == deployment_id))

    def deployments(self, state: str | None = None, limit: int = 100) -> list[RowMapping]:
        """Deployments, newest first, optionally in one state."""
        stmt = select(deployments).order_by(deployments.c.created_at.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(deployments.c.state == state)
        return self._all(stmt)

    # --- events, agents, tokens

    def events_since(self, after: int, limit: int = 1000) -> list[RowMapping]:
        """Events with an id above ``after``, oldest first."""
        stmt = select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
        return self._all(stmt)

    def last_skip(self, job: str) -> RowMapping | None:
        """The job's newest ``run_skipped`` event, if any."""
        stmt = (
            select(events)
            .where(events.c.job == job, events.c.type == "run_skipped")
            .order_by(events.c.id.desc())
            .limit(1)
        )
        return self._one(stmt)

    def last_event_id(self) -> int:
        """The id of the newest event (0 if none)."""
        with self._reading() as conn:
            return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)

    def agents(self) -> list[RowMapping]:
        """Every agent ever registered."""
        return self._all(select(agents).order_by(agents.c.hostname, agents.c.id))

    def agent(self, agent_id: str) -> RowMapping | None:
        """One agent, or None."""
        return self._one(select(agents).where(agents.c.id == agent_id))

    def token_user(self, token: str) -> tuple[str, str] | None:
        """The (user, role) a token belongs to, or None."""
        row = self._one(select(tokens).where(tokens.c.hash == hash_token(token)))
        return None if row is None else (row["user"], row["role"])

    def has_tokens(self) -> bool:
        """True once any token exists."""
        return self._one(select(tokens.c.hash).limit(1)) is not None
