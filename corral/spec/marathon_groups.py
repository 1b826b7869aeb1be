"""Marathon groups: a tree of apps posted at once, to and from a flat list of services.

Corral keeps no group objects: a group is the common prefix of its services' ids. Reading a group
resolves every relative id against its enclosing group (apps, subgroups and dependencies alike),
and gives each app the dependencies of every group it is in. A dependency on a group means one on
each of its apps (those of the document if it is there, else those that exist); one on anything
else is kept as the id given. What each group depends on is also kept on its apps
(``ServiceSpec.group_dependencies``), so that a group reads back with its dependencies, and a
group document that leaves them out keeps them, as Marathon keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from corral.spec.marathon_apps import translate
from corral.spec.marathon_errors import MarathonInvalid, input_errors, join
from corral.spec.marathon_models import Group
from corral.spec.marathon_render import JSON, spec_to_app
from corral.spec.services import ServiceSpec, normalize_service_id


def group_id(raw: str, base: str = "/") -> str:
    """A group's absolute id: ``/`` is the root group, others are service-like paths."""
    if not raw.strip("/") and (raw.startswith("/") or base == "/"):
        return "/"
    return normalize_service_id(raw, base)


def _inside(path: str, group: str) -> bool:
    """Whether ``path`` is ``group`` or within it."""
    return group == "/" or path == group or path.startswith(group + "/")


def _enclosing(group: str) -> list[str]:
    """The groups ``group`` is in, the root first (none for the root itself)."""
    parts = group.strip("/").split("/") if group != "/" else []
    return ["/" + "/".join(parts[:i]) for i in range(len(parts))]


@dataclass
class _App:
    doc: Any
    group: str
    where: str
    inherited: list[str]
    id: str | None
    groups: dict[str, list[str]]  # what each enclosing group depends on


class _Current:
    """The services there are now, as groups see them."""

    def __init__(self, specs: Sequence[ServiceSpec]) -> None:
        self.specs = sorted(specs, key=lambda s: s.id)

    def members(self, group: str) -> list[str]:
        """The ids of the services in ``group`` (or of the service of that id)."""
        return [s.id for s in self.specs if _inside(s.id, group)]

    def dependencies(self, group: str) -> list[str] | None:
        """What ``group`` depends on, as its services keep it; None if none says."""
        for s in self.specs:
            if _inside(s.id, group) and group in s.group_dependencies:
                return list(s.group_dependencies[group])
        return None


class _Walk:
    def __init__(self, current: _Current) -> None:
        self.current = current
        self.apps: list[_App] = []
        self.members: dict[str, list[str]] = {}  # group id -> ids of the apps in its subtree
        self.problems: list[tuple[str, str]] = []

    def group(
        self,
        doc: Any,
        parent: str,
        where: str,
        inherited: list[str],
        chain: dict[str, list[str]],
        top: bool,
    ) -> None:
        if not isinstance(doc, dict):
            self.problems.append((where or "/", "must be a JSON object (a Marathon group)"))
            return
        try:
            g = Group.model_validate(doc)
        except ValidationError as e:
            self.problems += input_errors(e, where).problems()
            return
        if g.id is None and top:
            gid = parent  # the group the document is posted to
        elif not g.id:
            self.problems.append((join(where, "/id"), "required: the group's id"))
            return
        else:
            try:
                gid = group_id(g.id, parent)
            except ValueError as e:
                self.problems.append((join(where, "/id"), str(e)))
                return
        if not top and (gid == parent or not _inside(gid, parent)):
            self.problems.append((join(where, "/id"), f"{gid} is not inside its group {parent}"))
            return
        if g.pods:
            self.problems.append((join(where, "/pods"), "pods are not supported; use apps"))
        if top:  # the groups above the document keep what they depend on
            for above in _enclosing(gid):
                kept = self.current.dependencies(above) or []
                inherited = inherited + kept
                chain = {**chain, above: kept} if kept else chain
        deps, own = list(inherited), []
        given = g.dependencies
        if given is None:  # left out: the group keeps what it depended on
            given = self.current.dependencies(gid) or []
        for i, raw in enumerate(given):
            at = join(where, f"/dependencies({i})")
            try:
                dep = group_id(raw, gid)
            except ValueError as e:
                self.problems.append((at, str(e)))
                continue
            if _inside(dep, gid) or _inside(gid, dep):
                self.problems.append(
                    (at, f"{dep} contains {gid} or is inside it: a dependency cycle")
                )
                continue
            own.append(dep)
        deps += own
        chain = {**chain, gid: own} if own else chain
        self.members.setdefault(gid, [])
        for i, app in enumerate(g.apps):
            at = join(where, f"/apps({i})")
            raw_id = app.get("id")
            try:
                ident = normalize_service_id(raw_id, gid) if isinstance(raw_id, str) else None
            except ValueError:
                ident = None  # the app's translation reports it
            if ident is not None and ident.rsplit("/", 1)[0] != gid.rstrip("/"):
                self.problems.append(
                    (
                        join(at, "/id"),
                        f"{ident} is not a child of its group {gid}: use a relative id",
                    )
                )
                continue
            self.apps.append(_App(app, gid, at, deps, ident, chain))
            if ident is not None:
                for group, members in self.members.items():
                    if _inside(ident, group) and group != ident:
                        members.append(ident)
        for i, sub in enumerate(g.groups):
            self.group(sub, gid, join(where, f"/groups({i})"), deps, chain, top=False)

    def expand(self, dep: str) -> list[str]:
        """A dependency on a group is one on each of its apps: those the document gives it,
        else those it has."""
        if dep in self.members:
            return list(self.members[dep])
        return self.current.members(dep) or [dep]


def group_to_specs(
    doc: Any, base: str = "/", current: Sequence[ServiceSpec] = ()
) -> list[ServiceSpec]:
    """The services of a Marathon group JSON (``{"id", "apps", "groups", "dependencies"}``).

    ``base`` is the group the document is posted to: its ``id`` (relative ids resolved against
    ``base``; left out, the group is ``base`` itself), the ids of its apps and subgroups (resolved
    against their group) and dependencies likewise. Every app depends on what its groups depend
    on. ``current`` are the services there are now: a group that leaves out ``dependencies``
    keeps those its services recorded, and so do the groups enclosing ``base``.
    ``MarathonInvalid`` lists every problem of every app at its path in the document
    (``/groups(0)/apps(1)/cpus``).
    """
    walk = _Walk(_Current(current))
    try:
        top = group_id(base)
    except ValueError as e:
        raise MarathonInvalid([("/id", str(e))]) from None
    walk.group(doc, top, "", [], {}, top=True)
    # Members were recorded as apps were met: an app in a subgroup met later is added too,
    # as the groups on its path were all recorded before it.
    problems = list(walk.problems)
    specs: list[ServiceSpec] = []
    seen: set[str] = set()
    for app in walk.apps:
        if app.id is not None:
            if app.id in seen:
                problems.append((join(app.where, "/id"), f"{app.id} is given twice"))
                continue
            seen.add(app.id)
        inherited: list[str] = []
        for dep in app.inherited:
            inherited += walk.expand(dep)
        try:
            spec = translate(app.doc, app.group, inherited, walk.expand)
        except MarathonInvalid as e:
            problems += e.under(app.where).problems()
            continue
        specs.append(spec.model_copy(update={"group_dependencies": app.groups}))
    if problems:
        raise MarathonInvalid(problems)
    return specs


def specs_to_group(
    group: str,
    specs: Iterable[ServiceSpec],
    *,
    version: str,
    render: Callable[[ServiceSpec], JSON] | None = None,
) -> JSON:
    """The Marathon group JSON of ``group`` (``/`` for the root) from a flat list of services.

    Services outside ``group`` are left out; subgroups are made from the ids' paths. Each app
    is ``render(spec)``: by default ``spec_to_app`` with ``version`` as both versions (give a
    ``render`` that adds each app's own versions and status). A group's ``dependencies`` are
    those its services recorded for it.
    """
    gid = group_id(group)
    draw = render or (lambda s: spec_to_app(s, version=version, config_version=version))
    mine = sorted((s for s in specs if _inside(s.id, gid) and s.id != gid), key=lambda s: s.id)
    return _node(gid, mine, version, draw)


def _node(
    gid: str, specs: Sequence[ServiceSpec], version: str, draw: Callable[[ServiceSpec], JSON]
) -> JSON:
    prefix = gid.rstrip("/") + "/"
    apps = [draw(s) for s in specs if "/" not in s.id[len(prefix) :]]
    children: dict[str, list[ServiceSpec]] = {}
    for s in specs:
        rest = s.id[len(prefix) :]
        if "/" in rest:
            children.setdefault(prefix + rest.split("/", 1)[0], []).append(s)
    recorded = (s.group_dependencies[gid] for s in specs if gid in s.group_dependencies)
    return {
        "id": gid,
        "apps": apps,
        "groups": [_node(sub, members, version, draw) for sub, members in children.items()],
        "pods": [],
        "dependencies": list(next(recorded, [])),
        "version": version,
    }
