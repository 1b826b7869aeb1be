"""Turning a job spec into concrete task rows: one per slot of a run, and one per retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.spec.docker import DockerSpec
from corral.spec.jobs import JobSpec
from corral.spec.protocol import TaskLaunch
from corral.spec.sweeps import Slot, expand, substitute


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


def placement_doc(spec: JobSpec) -> dict[str, Any]:
    """How the scheduler should place the job's tasks."""
    return {
        "strategy": spec.placement.value,
        "constraints": [c.model_dump(mode="json") for c in spec.constraints],
    }


def run_tasks(spec: JobSpec, owner: str, run: int, now: float) -> list[dict[str, Any]]:
    """The task rows of a new run: one PENDING first attempt per slot."""
    placement = placement_doc(spec)
    rows = []
    for slot in expand(spec.array, spec.params):
        tid = task_id(spec.name, run, slot.slot, 0)
        rows.append(
            {
                "id": tid,
                "job": spec.name,
                "run": run,
                "slot": slot.slot,
                "idx": slot.index,
                "attempt": 0,
                "latest": True,
                "state": "PENDING",
                "reason": "",
                "owner": owner,
                "priority": spec.priority,
                "launch": launch_for(spec, slot, tid, run).model_dump(mode="json"),
                "placement": placement,
                "kill_requested": False,
                "created_at": now,
            }
        )
    return rows


def retry_row(old: Mapping[str, Any], now: float, not_before: float) -> dict[str, Any]:
    """The next attempt of a task: the same launch under a new id, waiting for its backoff."""
    attempt = int(old["attempt"]) + 1
    tid = task_id(old["job"], old["run"], old["slot"], attempt)
    launch = dict(old["launch"])
    launch["task_id"] = tid
    launch["env"] = {**launch["env"], "CORRAL_TASK_ID": tid, "MESOS_TASK_ID": tid}
    return {
        **{k: old[k] for k in ("job", "run", "slot", "idx", "owner", "priority", "placement")},
        "id": tid,
        "attempt": attempt,
        "latest": True,
        "state": "PENDING",
        "reason": "",
        "launch": launch,
        "kill_requested": False,
        "created_at": now,
        "not_before": not_before,
    }
