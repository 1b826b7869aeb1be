"""Marathon's error format, and where a native field's error belongs in Marathon's JSON.

Marathon answers bad input with ``422 {"message": "Object is not valid", "details": [{"path":
"/healthChecks(0)/portIndex", "errors": ["..."]}]}``: a JSON path per field, list indices in
parentheses. Errors found in the ``ServiceSpec`` a Marathon app translates to carry native
locations (``task.cpus``); ``SpecPaths`` turns them back into the Marathon path they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

Loc = Sequence[str | int]
Detail = dict[str, Any]  # {"path": "/cpus", "errors": ["..."]}

INVALID = "Object is not valid"


class MarathonInvalid(Exception):
    """Input Corral refuses, each problem at its Marathon JSON path (``/cpus``)."""

    def __init__(self, details: Iterable[tuple[str, str]] | Sequence[Detail]) -> None:
        merged: dict[str, list[str]] = {}
        for item in details:
            if isinstance(item, tuple):
                path, errors = item[0], [item[1]]
            else:
                path, errors = item["path"], list(item["errors"])
            merged.setdefault(path, [])
            merged[path] += [e for e in errors if e not in merged[path]]
        self.details: list[Detail] = [{"path": p, "errors": e} for p, e in merged.items()]
        super().__init__("; ".join(f"{d['path']}: {' '.join(d['errors'])}" for d in self.details))

    def problems(self) -> list[tuple[str, str]]:
        """Each problem as (path, sentence), as the constructor takes them."""
        return [(d["path"], text) for d in self.details for text in d["errors"]]

    def under(self, prefix: str) -> MarathonInvalid:
        """The same problems inside an enclosing object: ``/cpus`` under ``/apps(1)``
        is ``/apps(1)/cpus``."""
        return MarathonInvalid(
            [{"path": join(prefix, d["path"]), "errors": d["errors"]} for d in self.details]
        )


def error_body(exc: MarathonInvalid) -> dict[str, Any]:
    """The body of Marathon's 422 answer for ``exc``."""
    return {"message": INVALID, "details": exc.details}


def join(prefix: str, path: str) -> str:
    """``/apps(1)`` and ``/cpus`` make ``/apps(1)/cpus``; the root ``/`` adds nothing."""
    prefix = prefix.rstrip("/")
    if path in ("", "/"):
        return prefix or "/"
    return prefix + path


def json_path(loc: Loc) -> str:
    """A location in Marathon's notation: ``("healthChecks", 0, "portIndex")`` is
    ``/healthChecks(0)/portIndex``."""
    path = ""
    for part in loc:
        path += f"({part})" if isinstance(part, int) else f"/{part}"
    return path or "/"


_TYPES = {
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a JSON array",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "missing": "required",
    "extra_forbidden": "is not a Marathon field that Corral knows",
}


def message(err: ErrorDetails) -> str:
    """A pydantic error as a sentence for Marathon's ``errors``."""
    if err["type"] in _TYPES:
        return _TYPES[err["type"]]
    return err["msg"].removeprefix("Value error, ")


def input_errors(e: ValidationError, prefix: str = "") -> MarathonInvalid:
    """Errors reading Marathon JSON: the locations already are Marathon's names."""
    return MarathonInvalid(
        [(join(prefix, json_path(err["loc"])), message(err)) for err in e.errors()]
    )


# --- native ServiceSpec locations to Marathon paths

# Native names of sub-fields as Marathon writes them; pydantic reports aliased fields
# (containerPort, hostPath...) by their alias, which already is Marathon's name.
_NAMES = {
    "grace_period": "gracePeriodSeconds",
    "interval": "intervalSeconds",
    "timeout": "timeoutSeconds",
    "max_consecutive_failures": "maxConsecutiveFailures",
    "port_index": "portIndex",
    "ignore_http_1xx": "ignoreHttp1xx",
    "delay": "delaySeconds",
    "container_port": "containerPort",
    "host_port": "hostPort",
    "container_path": "containerPath",
    "host_path": "hostPath",
    "minimum_health_capacity": "minimumHealthCapacity",
    "maximum_over_capacity": "maximumOverCapacity",
}

# Native location (list indices as "*") -> Marathon path ("{}" for each index) and whether the
# rest of the location is dropped (a constraint is one JSON array in Marathon).
_STATIC: dict[tuple[str, ...], tuple[str, bool]] = {
    (): ("/", False),
    ("id",): ("/id", False),
    ("instances",): ("/instances", False),
    ("task",): ("/", False),
    ("task", "shell"): ("/cmd", False),
    ("task", "command"): ("/args", False),
    ("task", "env"): ("/env", False),
    ("task", "cpus"): ("/cpus", False),
    ("task", "mem"): ("/mem", False),
    ("task", "disk"): ("/disk", False),
    ("task", "gpus"): ("/gpus", False),
    ("task", "kill_grace"): ("/taskKillGracePeriodSeconds", False),
    ("task", "driver"): ("/container", False),
    ("task", "docker"): ("/container/docker", False),
    ("task", "docker", "user"): ("/user", False),
    ("task", "docker", "volumes"): ("/container/volumes", False),
    ("task", "docker", "forcePullImage"): ("/container/docker/forcePullImage", False),
    ("task", "docker", "force_pull"): ("/container/docker/forcePullImage", False),
    ("require_ports",): ("/requirePorts", False),
    ("health_checks",): ("/healthChecks", False),
    ("backoff",): ("/", False),
    ("backoff", "seconds"): ("/backoffSeconds", False),
    ("backoff", "factor"): ("/backoffFactor", False),
    ("backoff", "max_launch_delay"): ("/maxLaunchDelaySeconds", False),
    ("upgrade",): ("/upgradeStrategy", False),
    ("constraints",): ("/constraints", False),
    ("constraints", "*"): ("/constraints({})", True),
    ("labels",): ("/labels", False),
    ("dependencies",): ("/dependencies", False),
}

# Messages of the native validators that name native fields, in Marathon's words.
_MESSAGES = {
    "give 'port' or 'port_index', not both": "give port or portIndex, not both",
    "a COMMAND health check needs 'command'": 'a COMMAND health check needs command {"value"}',
    "String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'": (
        "must be letters, digits and '_', not starting with a digit (it names PORT_<NAME>)"
    ),
}


class SpecPaths:
    """Where the parts of one translated ServiceSpec came from in the Marathon JSON.

    Most native fields have one Marathon home; ports, port mappings and the network have two
    (``ports`` or ``portDefinitions``, ``container.portMappings`` or
    ``container.docker.portMappings``, ``networks`` or ``container.docker.network``), recorded
    by the translation as it reads them.
    """

    def __init__(self) -> None:
        self._paths = dict(_STATIC)
        self.ports("/portDefinitions", whole_items=False)
        self.port_mappings("/container/portMappings")
        self.network("/networks")

    def ports(self, path: str, *, whole_items: bool) -> None:
        """``ports`` came from ``path``; ``whole_items`` when each is a bare number."""
        self._paths[("ports",)] = (path, False)
        self._paths[("ports", "*")] = (path + "({})", whole_items)

    def port_mappings(self, path: str) -> None:
        """Port mappings came from ``path``."""
        for name in ("portMappings", "port_mappings"):
            self._paths[("task", "docker", name)] = (path, False)

    def network(self, path: str) -> None:
        """The network mode came from ``path``."""
        self._paths[("task", "docker", "network")] = (path, False)

    def path(self, loc: Loc) -> str:
        """The Marathon path of a native location."""
        for n in range(len(loc), -1, -1):
            key = tuple("*" if isinstance(p, int) else p for p in loc[:n])
            if key in self._paths:
                template, whole = self._paths[key]
                head = template.format(*[p for p in loc[:n] if isinstance(p, int)])
                rest = (
                    []
                    if whole
                    else [_NAMES.get(p, p) if isinstance(p, str) else p for p in loc[n:]]
                )
                return join(head, json_path(rest)) if rest else head
        return json_path(loc)  # pragma: no cover - () is always in the table

    def errors(self, e: ValidationError) -> MarathonInvalid:
        """A ServiceSpec's validation errors at the Marathon paths they came from."""
        problems = []
        for err in e.errors():
            text = message(err)
            problems.append((self.path(err["loc"]), _MESSAGES.get(text, text)))
        return MarathonInvalid(problems)
