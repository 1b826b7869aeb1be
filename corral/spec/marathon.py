"""Marathon's app and group JSON, and their translation to and from Corral's ServiceSpec.

The Marathon v2 API of Corral reads what Marathon's clients send (the ``marathon`` PyPI
package, curl scripts, exported app JSON) and answers as Marathon does:

- ``app_to_spec`` / ``group_to_specs``: app or group JSON to ServiceSpecs; ``MarathonInvalid``
  names each problem at its Marathon path, ``error_body`` is Marathon's 422 body for it.
- ``spec_to_app`` / ``specs_to_group``: the JSON ``GET /v2/apps`` and ``GET /v2/groups`` answer;
  ``app_status`` and ``task_failure`` the status fields the API adds.
- ``merge_app``: a partial update (``PATCH``, or ``PUT`` of some fields) over the current app.
- ``keep_native_fields``: what an update through the Marathon API cannot say, kept from the
  service as it was.

The pieces live in ``marathon_models`` (the JSON as read), ``marathon_apps`` (app to spec),
``marathon_unsupported`` (what is refused), ``marathon_render`` (spec to app),
``marathon_groups`` and ``marathon_errors`` (paths and Marathon's error body).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.spec.marathon_apps import app_to_spec
from corral.spec.marathon_errors import MarathonInvalid, error_body
from corral.spec.marathon_groups import group_to_specs, specs_to_group
from corral.spec.marathon_render import (
    app_status,
    health_check_json,
    service_ports,
    spec_to_app,
    task_failure,
)
from corral.spec.services import ServiceSpec

__all__ = [
    "MarathonInvalid",
    "app_status",
    "app_to_spec",
    "error_body",
    "group_to_specs",
    "health_check_json",
    "keep_native_fields",
    "merge_app",
    "service_ports",
    "spec_to_app",
    "specs_to_group",
    "task_failure",
]


def merge_app(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The app JSON ``current`` (as ``spec_to_app`` wrote it) with the top-level fields of
    ``patch`` put in, each wholesale, as Marathon applies an update. A null in ``patch`` is an
    absent field (Marathon's reading, and what non-minimal clients send for what they leave).

    Fields that only make sense together are kept consistent: a new ``cmd`` drops the current
    ``args`` and the reverse, new ``ports`` drop the current ``portDefinitions`` and the reverse,
    and a patch choosing the network (``networks`` or ``container.docker.network``) drops the
    current one, and for BRIDGE the host ports the patch does not give.
    """
    given = {k: v for k, v in patch.items() if v is not None}
    out = dict(current) | given
    for field, companion in (("cmd", "args"), ("args", "cmd")):
        if field in given and companion not in given:
            out[companion] = None
    for field, companion in (("ports", "portDefinitions"), ("portDefinitions", "ports")):
        if field in given and companion not in given:
            out.pop(companion, None)
    legacy = _docker_network(given.get("container"))
    if legacy is not None and "networks" not in given:
        out.pop("networks", None)
    networks = given.get("networks")
    bridge = legacy == "BRIDGE" or (
        isinstance(networks, list)
        and any(isinstance(n, dict) and n.get("mode") == "container/bridge" for n in networks)
    )
    if bridge and "ports" not in given and "portDefinitions" not in given:
        out.pop("ports", None)
        out.pop("portDefinitions", None)
    return out


def _docker_network(container: Any) -> str | None:
    if isinstance(container, dict) and isinstance(container.get("docker"), dict):
        network = container["docker"].get("network")
        return network if isinstance(network, str) else None
    return None


def keep_native_fields(spec: ServiceSpec, current: ServiceSpec) -> ServiceSpec:
    """``spec`` (read from Marathon JSON) with the native fields Marathon JSON has no place for
    taken from ``current``: owner, description, placement, priority, what its groups depend
    on, the task's workdir and, when both run a container, its entrypoint and labels."""
    task: dict[str, Any] = {"workdir": current.task.workdir}
    if spec.task.docker is not None and current.task.docker is not None:
        old = current.task.docker
        task["docker"] = spec.task.docker.model_copy(
            update={"entrypoint": old.entrypoint, "labels": old.labels}
        )
    return spec.model_copy(
        update={
            "owner": current.owner,
            "description": current.description,
            "placement": current.placement,
            "priority": current.priority,
            "group_dependencies": current.group_dependencies,
            "task": spec.task.model_copy(update=task),
        }
    )
