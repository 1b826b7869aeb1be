"""Admission: refuse at submission what no agent of the cluster would ever run.

Volumes and privileged containers are allowed per agent (``--allow-volume``,
``--allow-privileged``), and GPUs are offered per agent; a spec that needs what no known agent
allows or has would wait forever, so it is refused up front with the field named, as a
validation error is. So is a gang whose nodes no set of known agents could hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from corral.master.gangs import gang_refusals
from corral.master.records import AgentRecord
from corral.scheduler.feasibility import path_under
from corral.spec.docker import PRIVILEGED_PARAMETERS
from corral.spec.jobs import JobSpec, TaskTemplate

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One field of a spec that the cluster cannot honour, and why."""

    loc: Loc
    msg: str


class Refused(Exception):
    """The spec is valid but cannot run on this cluster."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, r.loc))}: {r.msg}" for r in refusals))
        self.refusals = refusals


def refusals(
    spec: JobSpec, agents: Iterable[AgentRecord], jobs: Mapping[str, JobSpec]
) -> list[Refusal]:
    """What in ``spec`` the cluster cannot honour: unknown parents, a dependency cycle, what
    no known agent allows, or a gang no set of agents could hold (empty when it can run)."""
    known = list(agents)
    gang = [Refusal((field,), why) for field, why in gang_refusals(spec, known)]
    return _parent_refusals(spec, jobs) + task_refusals(spec.task, known) + gang


def task_refusals(task: TaskTemplate, agents: Iterable[AgentRecord]) -> list[Refusal]:
    """What in a task template no known agent allows or has: more GPUs than any agent has,
    volumes outside allowed paths, privilege (fields under ``task``)."""
    known = list(agents)
    found = _gpu_refusals(task, known)
    docker = task.docker
    if docker is None:
        return found
    roots = sorted({root for a in known for root in a.volume_roots})
    for i, volume in enumerate(docker.volumes):
        if not any(path_under(volume.host_path, root) for root in roots):
            allowed = ", ".join(roots) or "none"
            found.append(
                Refusal(
                    ("task", "docker", "volumes", i, "host_path"),
                    f"{volume.host_path} is not under a path any agent allows for volumes "
                    f"(allowed: {allowed}); agents allow more with --allow-volume",
                )
            )
    if not any(a.privileged for a in known):
        why = "no agent allows privileged containers (--allow-privileged)"
        if docker.privileged:
            found.append(Refusal(("task", "docker", "privileged"), why))
        for i, p in enumerate(docker.parameters):
            if p.key in PRIVILEGED_PARAMETERS:
                found.append(Refusal(("task", "docker", "parameters", i), f"{p.key}: {why}"))
    return found


def _gpu_refusals(task: TaskTemplate, agents: list[AgentRecord]) -> list[Refusal]:
    """A task's GPUs all come from one agent: more than the most any agent has never fit."""
    most = max((a.total.gpus for a in agents), default=0)
    if task.gpus <= most:
        return []
    has = f"no agent has more than {most}" if most else "no agent has any"
    asked = f"{task.gpus} GPU{'s' if task.gpus != 1 else ''} asked for"
    why = f"{asked}, but {has} (agents offer the GPUs NVML finds, or --gpus N)"
    return [Refusal(("task", "gpus"), why)]


def _parent_refusals(spec: JobSpec, jobs: Mapping[str, JobSpec]) -> list[Refusal]:
    found = []
    for i, parent in enumerate(spec.parents):
        if parent not in jobs:
            found.append(Refusal(("parents", i), f"unknown job {parent!r}"))
        else:
            cycle = _path_to(spec.name, parent, jobs)
            if cycle is not None:
                chain = " -> ".join([spec.name, *cycle])
                found.append(Refusal(("parents", i), f"dependency cycle: {chain}"))
    return found


def _path_to(target: str, start: str, jobs: Mapping[str, JobSpec]) -> list[str] | None:
    """A chain of parent links from ``start`` back to ``target``, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        if name == target:
            return path
        if name in seen or name not in jobs:
            continue
        seen.add(name)
        stack.extend((p, [*path, p]) for p in jobs[name].parents)
    return None


def admit(spec: JobSpec, agents: Iterable[AgentRecord], jobs: Mapping[str, JobSpec]) -> None:
    """Raise ``Refused`` if the cluster cannot run the spec."""
    found = refusals(spec, agents, jobs)
    if found:
        raise Refused(found)
