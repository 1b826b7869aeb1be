"""Dependent jobs: which children a parent's finished run starts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from corral.master.policy.effects import SkipRun, StartRun
from corral.spec.states import RunState


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the dependency rule needs of a job."""

    parents: tuple[str, ...]
    disabled: bool = False
    concurrent: bool = False  # a new run may start while one is unfinished
    running: bool = False  # a run of it is unfinished
    created_at: float = 0.0
    last_run_start: float | None = None  # when its newest run was created (None: never ran)
    last_success: float | None = None  # when a run of it last succeeded


def children_of(parent: str, parents: Mapping[str, Iterable[str]]) -> list[str]:
    """The jobs naming ``parent`` among their parents, by name (``parents``: job → parents)."""
    return sorted(name for name, ps in parents.items() if parent in ps)


def children_to_start(
    parent: str, outcome: RunState, jobs: Mapping[str, JobFacts]
) -> list[StartRun | SkipRun]:
    """After a run of ``parent`` ended with ``outcome``: start each child whose parents have
    all succeeded since the child's last run (or since it was defined); a child that may not
    run twice at once and still runs skips this firing. ``jobs`` holds the children and their
    parents as they are now (the parent's own success included); a job missing from it was
    deleted and blocks its children."""
    if outcome is not RunState.SUCCEEDED:
        return []
    effects: list[StartRun | SkipRun] = []
    for child in children_of(parent, {n: j.parents for n, j in jobs.items()}):
        facts = jobs[child]
        if facts.disabled:
            continue
        since = facts.last_run_start or facts.created_at
        if not all(_succeeded_since(jobs.get(p), since) for p in facts.parents):
            continue
        if facts.running and not facts.concurrent:
            effects.append(SkipRun(child, "previous run still running"))
        else:
            effects.append(StartRun(child, f"parents {', '.join(facts.parents)} succeeded"))
    return effects


def _succeeded_since(parent: JobFacts | None, since: float) -> bool:
    return parent is not None and parent.last_success is not None and parent.last_success > since
