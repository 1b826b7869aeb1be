"""Tables. Times are seconds since the epoch (float); specs are JSON documents."""

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()
# Integers are 64-bit on both backends: SQLite's INTEGER always is (and an INTEGER primary key
# is its rowid, so it stays INTEGER there); PostgreSQL's columns are BIGINT (migration 0011).
BigInt = BigInteger().with_variant(Integer(), "sqlite")
CREATED = "type IN ('job_created', 'service_created')"  # events that name a workload's owner

jobs = Table(
    "jobs",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("owner_group", String(100), nullable=False, default=""),  # the owner's primary group
    Column("spec", JSON, nullable=False),
    Column("runs", BigInt, nullable=False, default=0),  # number of the newest run
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Scheduling: firings count from the anchor; next_due is the oldest firing not handled.
    Column("anchor", Float),
    Column("next_due", Float, index=True),
    Column("next_index", BigInt),
    Column("success_count", BigInt, nullable=False, default=0),
    Column("error_count", BigInt, nullable=False, default=0),
    Column("last_success", Float),
    Column("last_error", Float),
)
# Lists of jobs: newest first, then by name.
Index("ix_jobs_created", jobs.c.created_at.desc(), jobs.c.name)

# The newest run number of every deleted job: a job created again under the same name counts on
# from there, so no task id ever repeats (an agent may still hold the old task's sandbox).
retired_jobs = Table(
    "retired_jobs",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("runs", BigInt, nullable=False),
)

# A run's tasks per state (newest attempts only) are kept as they change, one column per state,
# so reading a run's counts costs its row, not a count of its tasks.
TASK_STATES = (
    "PENDING",
    "STAGING",
    "STARTING",
    "RUNNING",
    "FINISHED",
    "FAILED",
    "KILLED",
    "LOST",
    "ERROR",
)
COUNT_COLUMNS = {state: f"n_{state.lower()}" for state in TASK_STATES}
FAILURES = "state IN ('FAILED', 'LOST', 'ERROR')"  # tasks the dashboard lists as failures

runs = Table(
    "runs",
    metadata,
    Column("job", String(100), primary_key=True),
    Column("number", BigInt, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("total", BigInt, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    *(Column(c, BigInt, nullable=False, default=0) for c in COUNT_COLUMNS.values()),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("job", String(100), nullable=False),
    Column("run", BigInt, nullable=False),
    Column("slot", BigInt, nullable=False),
    Column("idx", BigInt, nullable=False),  # the value of {index}
    Column("attempt", BigInt, nullable=False),
    Column("latest", Boolean, nullable=False, default=True),  # the newest attempt of its slot
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("exit_code", BigInt),
    Column("agent_id", String(100)),
    Column("owner", String(100), nullable=False),
    Column("priority", BigInt, nullable=False, default=0),
    Column("launch", JSON, nullable=False),  # a TaskLaunch document
    Column("placement", JSON, nullable=False),  # strategy and constraints
    Column("kill_requested", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("not_before", Float),
    Column("ports", JSON),  # host ports the agent gave it
    Column("devices", JSON),  # the GPU indices it was given on its agent, when placed
    Column("healthy", Boolean),  # the last health check's verdict; None: none yet or no checks
    Column("health", Text),  # the last health check's message
    # A preempted attempt: the task whose room it gave up (it ends KILLED, its slot requeued).
    Column("preempted_by", String(200)),
    # Earlier attempts of its slot that were preempted: they use up none of the job's retries.
    Column("requeues", BigInt, nullable=False, default=0, server_default="0"),
    # Creation order, given by the master (the one writer): lists of tasks are in this order
    # and a page's cursor is the last seq it holds, so each filter has an index ending in it.
    Column("seq", BigInt, nullable=False),
    Index("ix_tasks_seq", "seq", unique=True),
    Index("ix_tasks_job_seq", "job", "seq"),
    Index("ix_tasks_run_seq", "job", "run", "seq"),
    Index("ix_tasks_state_seq", "state", "seq"),
    Index("ix_tasks_agent_seq", "agent_id", "seq"),
    Index("ix_tasks_owner_seq", "owner", "seq"),
    # The newest failures (the dashboard's overview); partial, so the hot path pays nothing.
    Index(
        "ix_tasks_failures",
        "finished_at",
        sqlite_where=text(FAILURES),
        postgresql_where=text(FAILURES),
    ),
)

# A service's tasks are rows of ``tasks`` whose ``job`` is the service id (it starts with "/")
# and whose ``run`` is the number of the configuration they run.
services = Table(
    "services",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("owner_group", String(100), nullable=False, default=""),  # the owner's primary group
    Column("spec", JSON, nullable=False),  # the desired state now
    Column("version", String(40), nullable=False),  # time of the last change (Marathon version)
    Column("config", BigInt, nullable=False),  # number of the configuration new tasks run
    Column("config_version", String(40), nullable=False),  # time the configuration was set
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("next_slot", BigInt, nullable=False, default=0),  # numbers the service's tasks
    # Restart backoff: failures in a row, and no replacement starts before delay_until.
    Column("failures", BigInt, nullable=False, default=0),
    Column("delay_until", Float),
    Column("last_failure", JSON),  # {time, task_id, state, reason}
)

service_versions = Table(
    "service_versions",
    metadata,
    Column("service", String(100), primary_key=True),
    Column("version", String(40), primary_key=True),
    Column("config", BigInt, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("version", String(40), nullable=False),
    Column("state", String(16), nullable=False),  # RUNNING, SUCCEEDED, CANCELLED
    # [[{"action": "StartApplication", "app": "/x"}, ...], ...]: steps in order.
    Column("steps", JSON, nullable=False),
    Column("current_step", BigInt, nullable=False, default=0),
    # The version each affected service had before (null: it did not exist), for rollback.
    Column("previous", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_deployments_state", "state"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("type", String(32), nullable=False),
    Column("job", String(100)),
    Column("run", BigInt),
    Column("task_id", String(200)),
    Column("agent_id", String(100)),
    Column("state", String(16)),
    Column("reason", Text, nullable=False, default=""),
    Column("data", JSON, nullable=False, default=dict),
    Index("ix_events_task", "task_id"),
    # A job's newest skip record (its view) without scanning the log; partial, so the hot path
    # (task events) pays nothing for it.
    Index(
        "ix_events_skips",
        "job",
        "id",
        sqlite_where=text("type = 'run_skipped'"),
        postgresql_where=text("type = 'run_skipped'"),
    ),
    # Who owned a job or service name when (its creation events name the owner): an event
    # stream of one user's work reads it, as a name may be deleted and taken by another user.
    Index(
        "ix_events_created",
        "job",
        "id",
        sqlite_where=text(CREATED),
        postgresql_where=text(CREATED),
    ),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("resources", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("drivers", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("cgroups", Text, nullable=False, default=""),
    # What else it allows: volume_roots (host paths), privileged (containers).
    Column("capabilities", JSON, nullable=False, default=dict),
    Column("last_seq", BigInt, nullable=False, default=0),  # newest status update applied
    Column("registered_at", Float, nullable=False),
    Column("last_heartbeat", Float),
)


def _share_columns() -> list[Column[Any]]:
    """A user's or a group's fair-share weight and quotas (None: no cap)."""
    return [
        Column("weight", Float, nullable=False, default=1.0, server_default="1"),
        Column("quota_millicpus", BigInt),
        Column("quota_mem", BigInt),  # MiB
        Column("quota_gpus", BigInt),
        Column("quota_tasks", BigInt),  # tasks holding resources at once
    ]


# Accounts. A user's primary group is also one of their memberships; a workload records the
# primary group its owner had when it was submitted (``owner_group``), as Slurm records the
# account of a job.
users = Table(
    "users",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("primary_group", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    *_share_columns(),
)

groups = Table(
    "groups",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("created_at", Float, nullable=False),
    *_share_columns(),
)

# Each owner's usage, decayed to ``at`` (resource-seconds, each halved every half-life): the
# master keeps it in memory and writes it here now and then, so a new master goes on from it.
fair_share_usage = Table(
    "fair_share_usage",
    metadata,
    Column("owner", String(100), primary_key=True),
    Column("millicpu_seconds", Float, nullable=False),
    Column("mem_seconds", Float, nullable=False),  # MiB-seconds
    Column("disk_seconds", Float, nullable=False),  # MiB-seconds
    Column("gpu_seconds", Float, nullable=False),
    Column("at", Float, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_name", String(100), primary_key=True),
    Column("user_name", String(100), primary_key=True),
    Index("ix_group_members_user", "user_name"),
)

tokens = Table(
    "tokens",
    metadata,
    # sha256 of the token: tokens are 256 random bits, so a fast unkeyed hash cannot be
    # reversed or searched (see corral.master.accounts).
    Column("hash", String(64), primary_key=True),
    Column("id", String(16), nullable=False),  # names it in lists and revocations
    Column("user", String(100), nullable=False),
    Column("role", String(16), nullable=False),  # may be narrower than its user's
    Column("name", String(200), nullable=False, default=""),  # what it is for
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),  # to the minute: written at most once a minute
    Index("ix_tokens_id", "id", unique=True),
    Index("ix_tokens_user", "user"),
)

# Who may write: the master holding the newest epoch (a fencing token). Every write transaction
# of a master checks that its epoch is still this one, so a master that a newer one replaced can
# no longer change anything, however late its writes arrive. The holder leads while its lease
# runs (it renews it); once the lease has expired another master may take the next epoch.
leadership = Table(
    "leadership",
    metadata,
    Column("id", BigInt, primary_key=True),  # always 1: one row
    Column("epoch", BigInt, nullable=False),
    Column("holder", String(200), nullable=False),  # host:pid:instance of the leading process
    Column("since", Float, nullable=False),  # when this epoch began
    Column("url", String(500), nullable=False, server_default=""),  # where the leader answers
    Column("renewed_at", Float, nullable=False, server_default="0"),
    Column("expires_at", Float, nullable=False, server_default="0"),  # the lease's end
)

# Accounting of deleted work: when a job or service is deleted with its tasks, the attempts that
# ran or ended are kept here as accounting reads them (``corral usage``), so what was used does
# not vanish with the work. The group is the one the work was counted to when it was deleted.
task_usage = Table(
    "task_usage",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("owner_group", String(100), nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("cpus", Float, nullable=False),
    Column("mem", BigInt, nullable=False),
    Column("gpus", BigInt, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("preempted_by", String(200)),
)
