"""A ServiceSpec as the Marathon app JSON that ``GET /v2/apps`` answers.

The app is written in Marathon 1.5's canonical networking form (``networks``,
``container.portMappings``), plus the older ``ports`` list Marathon 1.4 clients read; posting the
answer back (as clients that read, modify and PUT do) gives the same spec. Only keys the
``marathon`` PyPI client accepts are written: it builds its objects with ``Cls(**json)``, and an
unknown key there is a ``TypeError`` in the client. Native fields Marathon has no place for
(``owner``, ``description``, ``placement``, ``priority``, ``task.workdir``,
``docker.entrypoint``, ``docker.labels``) are not written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.spec.jobs import TaskTemplate
from corral.spec.services import HealthCheckSpec, ServiceSpec

JSON = dict[str, Any]

# What Marathon answers for the fields Corral has one fixed behaviour for.
UNREACHABLE = {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
KILL_SELECTION = "YOUNGEST_FIRST"
KILL_GRACE = TaskTemplate.model_fields["kill_grace"].default


def number(value: float) -> int | float:
    """Seconds as Marathon writes them: a whole number as an integer."""
    return int(value) if float(value).is_integer() else value


def spec_to_app(spec: ServiceSpec, *, version: str, config_version: str) -> JSON:
    """The Marathon app JSON of ``spec``, without the status fields (see ``app_status``).

    ``version`` is when the service last changed in any way (Marathon's ``version`` and
    ``versionInfo.lastScalingAt``), ``config_version`` when its configuration last changed
    (``versionInfo.lastConfigChangeAt``); both as Marathon writes times,
    ``2024-05-01T12:00:00.000Z``.
    """
    task, docker = spec.task, spec.task.docker
    bridge = docker is not None and docker.network == "BRIDGE"
    app: JSON = {
        "id": spec.id,
        "cmd": task.shell,
        "args": list(task.command) if task.command is not None else None,
        "user": docker.user if docker is not None else None,
        "env": dict(task.env),
        "instances": spec.instances,
        "cpus": task.cpus,
        "mem": task.mem,
        "disk": task.disk,
        "gpus": task.gpus,
        "executor": "",
        "constraints": [
            [c.field, c.operator.value] + ([] if c.value is None else [c.value])
            for c in spec.constraints
        ],
        "uris": [],
        "fetch": [],
        "storeUrls": [],
        "backoffSeconds": number(spec.backoff.seconds),
        "backoffFactor": spec.backoff.factor,
        "maxLaunchDelaySeconds": number(spec.backoff.max_launch_delay),
        "container": _container(spec),
        "healthChecks": [health_check_json(h) for h in spec.health_checks],
        "readinessChecks": [],
        "dependencies": list(spec.dependencies),
        "upgradeStrategy": {
            "minimumHealthCapacity": spec.upgrade.minimum_health_capacity,
            "maximumOverCapacity": spec.upgrade.maximum_over_capacity,
        },
        "labels": dict(spec.labels),
        "acceptedResourceRoles": None,
        "ports": [p.port for p in spec.ports],
        "portDefinitions": [
            {"port": p.port, "protocol": p.protocol, "labels": dict(p.labels)}
            | ({"name": p.name} if p.name else {})
            for p in spec.ports
        ],
        "requirePorts": spec.require_ports,
        "networks": [{"mode": "container/bridge"}] if bridge else [{"mode": "host"}],
        "version": version,
        "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": config_version},
        "killSelection": KILL_SELECTION,
        "unreachableStrategy": dict(UNREACHABLE),
    }
    # Unset unless given, as Marathon answers it: the default grace reads as no value.
    if task.kill_grace != KILL_GRACE:
        app["taskKillGracePeriodSeconds"] = number(task.kill_grace)
    return app


def service_ports(spec: ServiceSpec) -> list[int]:
    """The app's service ports, in the order of its host ports: the ports of
    ``portDefinitions`` (0: none chosen) or, for BRIDGE, 0 per port mapping (Corral allocates
    no load balancer ports)."""
    docker = spec.task.docker
    if docker is not None and docker.network == "BRIDGE":
        return [0 for _ in docker.port_mappings]
    return [p.port for p in spec.ports]


def _container(spec: ServiceSpec) -> JSON | None:
    docker = spec.task.docker
    if docker is None:
        return None
    out: JSON = {
        "type": "DOCKER",
        "docker": {
            "image": docker.image,
            "privileged": docker.privileged,
            "parameters": [{"key": p.key, "value": p.value} for p in docker.parameters],
            "forcePullImage": docker.force_pull,
        },
        "volumes": [
            {"containerPath": v.container_path, "hostPath": v.host_path, "mode": v.mode}
            for v in docker.volumes
        ],
    }
    if docker.network == "BRIDGE":
        out["portMappings"] = [
            {
                "containerPort": m.container_port,
                "hostPort": m.host_port,
                # Corral allocates no service ports (a load balancer's): 0, as Marathon
                # writes a mapping without one.
                "servicePort": 0,
                "protocol": m.protocol,
                "labels": {},
            }
            | ({"name": m.name} if m.name else {})
            for m in docker.port_mappings
        ]
    return out


def health_check_json(h: HealthCheckSpec) -> JSON:
    """One of an app's ``healthChecks`` as Marathon writes it."""
    # Only a check Mesos runs waits before its first run: a network check with a delay was
    # posted as MESOS_<protocol>, and is written back so.
    mesos = h.protocol != "COMMAND" and h.delay > 0
    out: JSON = {
        "protocol": f"MESOS_{h.protocol}" if mesos else h.protocol,
        "path": h.path,
        "ignoreHttp1xx": h.ignore_http_1xx,
        "gracePeriodSeconds": number(h.grace_period),
        "intervalSeconds": number(h.interval),
        "timeoutSeconds": number(h.timeout),
        "maxConsecutiveFailures": h.max_consecutive_failures,
        "delaySeconds": number(h.delay),
    }
    if h.command is not None:
        out["command"] = {"value": h.command}
    if h.port is not None:
        out["port"] = h.port
    # Left out, as given: Marathon would show 0 (the first port), which reads back as a
    # different spec and would turn a scale of the service into a restart.
    if h.port_index is not None:
        out["portIndex"] = h.port_index
    return out


def app_status(
    *,
    tasks_running: int,
    tasks_staged: int,
    tasks_healthy: int,
    tasks_unhealthy: int,
    deployments: Sequence[str] = (),
    tasks: Sequence[Mapping[str, Any]] | None = None,
    last_task_failure: Mapping[str, Any] | None = None,
) -> JSON:
    """The status fields Marathon adds to an app (``embed=app.counts``, ``app.deployments``,
    ``app.tasks``, ``app.lastTaskFailure``), to merge into ``spec_to_app``'s answer.

    ``deployments`` are deployment ids; ``tasks`` already in Marathon's task JSON (left out
    when None); ``last_task_failure`` as ``task_failure`` builds it (left out when None).
    """
    out: JSON = {
        "tasksRunning": tasks_running,
        "tasksStaged": tasks_staged,
        "tasksHealthy": tasks_healthy,
        "tasksUnhealthy": tasks_unhealthy,
        "deployments": [{"id": d} for d in deployments],
    }
    if tasks is not None:
        out["tasks"] = [dict(t) for t in tasks]
    if last_task_failure is not None:
        out["lastTaskFailure"] = dict(last_task_failure)
    return out


def task_failure(
    *,
    app_id: str,
    task_id: str,
    state: str,
    message: str,
    timestamp: str,
    version: str,
    host: str = "",
    agent_id: str = "",
) -> JSON:
    """An app's ``lastTaskFailure`` as Marathon writes it. ``state`` is a task state
    (``FAILED`` or Mesos' ``TASK_FAILED``: written the Mesos way); ``timestamp`` and
    ``version`` are Marathon times."""
    return {
        "appId": app_id,
        "host": host,
        "message": message,
        "state": state if state.startswith("TASK_") else f"TASK_{state}",
        "taskId": task_id,
        "timestamp": timestamp,
        "version": version,
        "slaveId": agent_id or None,
    }
