"""Marathon groups: a tree of apps posted at once, to and from a flat list of services.

Corral keeps no group objects: a group is the common prefix of its services' ids. Reading a group
resolves every relative id against its enclosing group (apps, subgroups and dependencies alike),
and gives each app the dependencies of every group it is in. A dependency on a group of the same
document means one on each of that group's apps; one on anything else is kept as the id given.
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


@dataclass
class _App:
    doc: Any
    group: str
    where: str
    inherited: list[str]
    id: str | None


class _Walk:
    def __init__(self) -> None:
        self.apps: list[_App] = []
        self.members: dict[str, list[str]] = {}  # group id -> ids of the apps in its subtree
        self.problems: list[tuple[str, str]] = []

    def group(self, doc: Any, parent: str, where: str, inherited: list[str], top: bool) -> None:
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
        deps = list(inherited)
        for i, raw in enumerate(g.dependencies):
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
            deps.append(dep)
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
            self.apps.append(_App(app, gid, at, deps, ident))
            if ident is not None:
                for group, members in self.members.items():
                    if _inside(ident, group) and group != ident:
                        members.append(ident)
        for i, sub in enumerate(g.groups):
            self.group(sub, gid, join(where, f"/groups({i})"), deps, top=False)

    def expand(self, dep: str) -> list[str]:
        """A dependency on a group of the document is one on each of its apps."""
        return list(self.members[dep]) if dep in self.members else [dep]


def group_to_specs(doc: Any, base: str = "/") -> list[ServiceSpec]:
    """The services of a Marathon group JSON (``{"id", "apps", "groups", "dependencies"}``).

    ``base`` is the group the document is posted to: its ``id`` (relative ids resolved against
    ``base``; left out, the group is ``base`` itself), the ids of its apps and subgroups (resolved
    against their group) and dependencies likewise. Every app depends on what its groups depend
    on. ``MarathonInvalid`` lists every problem of every app at its path in the document
    (``/groups(0)/apps(1)/cpus``).
    """
    walk = _Walk()
    try:
        top = group_id(base)
    except ValueError as e:
        raise MarathonInvalid([("/id", str(e))]) from None
    walk.group(doc, top, "", [], top=True)
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
            specs.append(translate(app.doc, app.group, inherited, walk.expand))
        except MarathonInvalid as e:
            problems += e.under(app.where).problems()
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
    ``render`` that adds each app's own versions and status). Groups have no dependencies of
    their own in Corral (they were given to their apps): ``dependencies`` is empty.
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
    return {
        "id": gid,
        "apps": apps,
        "groups": [_node(sub, members, version, draw) for sub, members in children.items()],
        "pods": [],
        "dependencies": [],
        "version": version,
    }
