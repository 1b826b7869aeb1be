"""Turning a job spec into concrete task rows: one per slot of a run, and one per retry."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from corral.spec.docker import DockerSpec
from corral.spec.jobs import ConstraintSpec, JobSpec
from corral.spec.protocol import GangMember, TaskLaunch
from corral.spec.sweeps import Slot, expand, substitute
from corral.store.rows import LaunchFacts, PackedLaunch, Rule, TaskRow


def task_id(job: str, run: int, slot: int, attempt: int) -> str:
    """``{job}.{run}.{slot}.{attempt}``: readable, unique, and sortable by eye."""
    return f"{job}.{run}.{slot}.{attempt}"


def _env(spec: JobSpec, slot: Slot, tid: str, run: int) -> dict[str, str]:
    env = {k: substitute(v, slot) for k, v in spec.task.env.items()}
    env.update(
        CORRAL_TASK_ID=tid,
        CORRAL_JOB=spec.name,
        CORRAL_RUN=str(run),
        CORRAL_ARRAY_INDEX=str(slot.index),
        # The names that images written for Mesos and Chronos read.
        MESOS_TASK_ID=tid,
        CHRONOS_JOB_NAME=spec.name,
    )
    for name, value in slot.params.items():
        env[f"CORRAL_PARAM_{name}"] = value
    return env


def launch_for(spec: JobSpec, slot: Slot, tid: str, run: int) -> TaskLaunch:
    """The launch message of one slot, placeholders replaced."""
    t = spec.task
    return TaskLaunch(
        task_id=tid,
        job=spec.name,
        command=None if t.command is None else [substitute(a, slot) for a in t.command],
        shell=None if t.shell is None else substitute(t.shell, slot),
        env=_env(spec, slot, tid, run),
        cpus=t.cpus,
        mem=t.mem,
        disk=t.disk,
        gpus=t.gpus,
        workdir=None if t.workdir is None else substitute(t.workdir, slot),
        max_runtime=t.max_runtime,
        kill_grace=t.kill_grace,
        driver=t.driver,
        docker=None if t.docker is None else _docker_for(t.docker, slot),
    )


def _docker_for(docker: DockerSpec, slot: Slot) -> DockerSpec:
    """Placeholders in volume paths too: a sweep often mounts one directory per task."""
    volumes = [
        v.model_copy(
            update={
                "host_path": substitute(v.host_path, slot),
                "container_path": substitute(v.container_path, slot),
            }
        )
        for v in docker.volumes
    ]
    return docker.model_copy(update={"volumes": volumes})


def rules_of(constraints: Sequence[ConstraintSpec]) -> tuple[Rule, ...]:
    """A spec's placement constraints as the task row keeps them."""
    return tuple(Rule(c.field, c.operator.value, c.value) for c in constraints)


def slots_of(spec: JobSpec) -> Iterator[Slot]:
    """The slots of a run: its array and sweep, or a gang's ranks (``{index}`` is the rank)."""
    if spec.gang_size is None:
        return expand(spec.array, spec.params)
    return (Slot(rank, rank, {}) for rank in range(spec.gang_size))


def gang_member(spec: JobSpec, run: int, rank: int) -> GangMember | None:
    """A rank's place in the gang of run ``run`` (None for a job that is no gang)."""
    if spec.nodes is None:
        return None
    return GangMember(
        gang=f"{spec.name}.{run}",
        rank=rank,
        nodes=spec.nodes,
        tasks_per_node=spec.tasks_per_node or 1,
        every_rank=spec.every_rank,
    )


def run_tasks(spec: JobSpec, owner: str, run: int, now: float) -> list[TaskRow]:
    """The task rows of a new run: one PENDING first attempt per slot (per rank of a gang)."""
    rules = rules_of(spec.constraints)
    docker = spec.task.docker
    # What placing a slot needs is the same for every slot, but where volumes name it.
    per_slot = docker is not None and any("{" in v.host_path for v in docker.volumes)
    facts: LaunchFacts | None = None
    rows = []
    for slot in slots_of(spec):
        tid = task_id(spec.name, run, slot.slot, 0)
        launch = launch_for(spec, slot, tid, run)
        if (member := gang_member(spec, run, slot.slot)) is not None:
            launch = launch.model_copy(update={"gang": member})
        packed = PackedLaunch.of(launch, None if per_slot else facts)
        facts = packed.facts
        rows.append(
            TaskRow(
                id=tid,
                job=spec.name,
                run=run,
                slot=slot.slot,
                idx=slot.index,
                attempt=0,
                owner=owner,
                priority=spec.priority,
                launch=packed,
                strategy=spec.placement.value,
                rules=rules,
                created_at=now,
            )
        )
    return rows


def retry_of(row: TaskRow, now: float, not_before: float, requeue: bool = False) -> TaskRow:
    """The next attempt of a task: the same launch under the next id, waiting for its backoff
    (``requeue``: the task was preempted, and goes back to waiting)."""
    tid = task_id(row.job, row.run, row.slot, row.attempt + 1)
    return row.next_attempt(tid, now, not_before, requeue)
