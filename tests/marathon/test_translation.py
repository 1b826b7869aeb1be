"""Marathon app and group JSON to Corral's ServiceSpec and back: every field, Marathon's
defaults, the errors at Marathon's paths, groups, and the round trip clients rely on when they
GET an app, change it and PUT it back."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.spec.marathon import (
    MarathonInvalid,
    app_status,
    app_to_spec,
    error_body,
    group_to_specs,
    keep_native_fields,
    merge_app,
    spec_to_app,
    specs_to_group,
    task_failure,
)
from corral.spec.services import PortSpec, ServiceSpec

JSON = dict[str, Any]
V = "2024-05-01T12:00:00.000Z"
C = "2024-04-01T08:30:00.000Z"


def app(**fields: Any) -> JSON:
    """A process app as a curl script writes it, with ``fields`` put in (None removes one)."""
    doc: JSON = {"id": "/web", "cmd": "sleep 1000", **fields}
    return {k: v for k, v in doc.items() if v is not None}


def docker(image: str = "nginx:1.25", **fields: Any) -> JSON:
    """A ``container`` object of a Docker image."""
    return {"type": "DOCKER", "docker": {"image": image}, **fields}


def render(spec: ServiceSpec) -> JSON:
    return spec_to_app(spec, version=V, config_version=C)


def pick(obj: Any, dotted: str) -> Any:
    """``task.docker.volumes.0.mode`` of a spec."""
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def problems(doc: Any, base: str = "/") -> dict[str, list[str]]:
    with pytest.raises(MarathonInvalid) as caught:
        app_to_spec(doc, base)
    return {d["path"]: d["errors"] for d in caught.value.details}


def minimal(value: Any, key: str = "") -> Any:
    """JSON as the ``marathon`` client re-sends what it read (``to_json(minimal=True)``):
    nulls and empty strings, lists and objects left out (env and labels are plain dicts)."""
    if isinstance(value, dict):
        if key in ("env", "labels"):
            return dict(value)
        return {k: minimal(v, k) for k, v in value.items() if v or v is False or v == 0}
    if isinstance(value, list):
        return [minimal(v) for v in value]
    return value


def snake(name: str) -> str:
    """The ``marathon`` client's ``to_snake_case``: the keyword its ``from_json`` passes."""
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1).lower()


# --- realistic apps

APPS: list[tuple[str, str, JSON, JSON]] = [
    (
        "a python http.server with an HTTP health check",
        "/",
        {
            "id": "/python-web",
            "cmd": "python3 -m http.server $PORT0",
            "cpus": 0.25,
            "mem": 64,
            "instances": 2,
            "healthChecks": [
                {
                    "protocol": "HTTP",
                    "path": "/",
                    "portIndex": 0,
                    "gracePeriodSeconds": 30,
                    "intervalSeconds": 10,
                    "timeoutSeconds": 5,
                    "maxConsecutiveFailures": 3,
                }
            ],
        },
        {
            "task.shell": "python3 -m http.server $PORT0",
            "task.driver": "process",
            "ports": [PortSpec(port=0)],
            "health_checks.0.protocol": "HTTP",
            "health_checks.0.port_index": 0,
            "health_checks.0.grace_period": 30,
            "health_checks.0.interval": 10,
            "health_checks.0.timeout": 5,
        },
    ),
    (
        "nginx in BRIDGE with the pre-1.5 docker.portMappings and a service port",
        "/",
        {
            "id": "/nginx",
            "instances": 3,
            "cpus": 0.5,
            "mem": 128,
            "container": {
                "type": "DOCKER",
                "docker": {
                    "image": "nginx:1.25",
                    "network": "BRIDGE",
                    "portMappings": [
                        {
                            "containerPort": 80,
                            "hostPort": 0,
                            "servicePort": 10080,
                            "protocol": "tcp",
                        }
                    ],
                },
            },
            "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
            "labels": {"HAPROXY_GROUP": "external"},
        },
        {
            "task.driver": "docker",
            "task.docker.image": "nginx:1.25",
            "task.docker.network": "BRIDGE",
            "task.docker.port_mappings.0.container_port": 80,
            "task.docker.port_mappings.0.host_port": 0,
            "ports": [],
            "labels": {"HAPROXY_GROUP": "external"},
        },
    ),
    (
        "nginx in BRIDGE written the 1.5 way, networks and container.portMappings",
        "/",
        {
            "id": "/nginx",
            "container": {
                "type": "DOCKER",
                "docker": {"image": "nginx:1.25"},
                "portMappings": [
                    {"containerPort": 80, "hostPort": 8080, "name": "http", "protocol": "tcp"},
                    {"containerPort": 443, "name": "https"},
                ],
            },
            "networks": [{"mode": "container/bridge"}],
            "healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 1}],
        },
        {
            "task.docker.network": "BRIDGE",
            "task.docker.port_mappings.0.host_port": 8080,
            "task.docker.port_mappings.1.name": "https",
            "health_checks.0.protocol": "TCP",
            "health_checks.0.port_index": 1,
        },
    ),
    (
        "postgres with a RW volume, a required port and one task per host",
        "/",
        {
            "id": "/lab/db",
            "container": {
                "type": "DOCKER",
                "docker": {"image": "postgres:16", "network": "HOST"},
                "volumes": [
                    {
                        "containerPath": "/var/lib/postgresql/data",
                        "hostPath": "/srv/pgdata",
                        "mode": "RW",
                    }
                ],
            },
            "env": {"POSTGRES_PASSWORD": "secret", "PGPORT": "5432"},
            "cpus": 2,
            "mem": 4096,
            "disk": 10240,
            "constraints": [["hostname", "UNIQUE"]],
            "portDefinitions": [{"port": 5432, "name": "pg", "protocol": "tcp"}],
            "requirePorts": True,
            "healthChecks": [{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 120}],
            "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
            "taskKillGracePeriodSeconds": 60,
        },
        {
            "task.docker.network": "HOST",
            "task.docker.volumes.0.host_path": "/srv/pgdata",
            "task.docker.volumes.0.mode": "RW",
            "constraints.0.field": "hostname",
            "constraints.0.operator": "UNIQUE",
            "ports": [PortSpec(port=5432, name="pg")],
            "require_ports": True,
            "upgrade.minimum_health_capacity": 0,
            "upgrade.maximum_over_capacity": 0,
            "task.kill_grace": 60,
            "task.cpus": 2,
            "task.mem": 4096,
            "task.disk": 10240,
        },
    ),
    (
        "a worker run as argv and checked by a COMMAND health check",
        "/",
        {
            "id": "/worker",
            "args": ["/usr/bin/worker", "--queue", "jobs"],
            "cpus": 1,
            "mem": 512,
            "ports": [],
            "healthChecks": [
                {
                    "protocol": "COMMAND",
                    "command": {"value": "test -f /tmp/alive"},
                    "intervalSeconds": 30,
                    "timeoutSeconds": 10,
                    "maxConsecutiveFailures": 0,
                }
            ],
            "backoffSeconds": 5,
            "backoffFactor": 2,
            "maxLaunchDelaySeconds": 600,
        },
        {
            "task.command": ["/usr/bin/worker", "--queue", "jobs"],
            "task.shell": None,
            "ports": [],
            "health_checks.0.protocol": "COMMAND",
            "health_checks.0.command": "test -f /tmp/alive",
            "health_checks.0.port_index": None,
            "health_checks.0.max_consecutive_failures": 0,
            "backoff.seconds": 5,
            "backoff.factor": 2,
            "backoff.max_launch_delay": 600,
        },
    ),
    (
        "a MESOS (UCR) container of a Docker image with a MESOS_HTTP check",
        "/",
        {
            "id": "/api",
            "cmd": "exec /app/api --port $PORT_HTTP",
            "container": {
                "type": "MESOS",
                "docker": {"image": "registry.local/api:2.1", "forcePullImage": True},
                "volumes": [
                    {"containerPath": "/etc/api", "hostPath": "/srv/api/conf", "mode": "RO"}
                ],
            },
            "networks": [{"mode": "host"}],
            "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
            "healthChecks": [
                {"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 1, "delaySeconds": 5}
            ],
        },
        {
            "task.driver": "docker",
            "task.docker.image": "registry.local/api:2.1",
            "task.docker.force_pull": True,
            "task.docker.network": "HOST",
            "task.docker.volumes.0.mode": "RO",
            "task.shell": "exec /app/api --port $PORT_HTTP",
            "health_checks.0.protocol": "HTTP",
            "health_checks.0.path": "/health",
            "health_checks.0.delay": 5,
            "ports": [PortSpec(name="http"), PortSpec(name="admin")],
        },
    ),
    (
        "an app posted into a group, with relative id and dependencies",
        "/lab",
        {
            "id": "portal",
            "cmd": "./portal",
            "dependencies": ["db", "../shared/cache"],
            "constraints": [["rack", "GROUP_BY", "2"], ["gpu", "LIKE", "a100|h100"]],
        },
        {
            "id": "/lab/portal",
            "dependencies": ["/lab/db", "/shared/cache"],
            "constraints.0.operator": "GROUP_BY",
            "constraints.0.value": "2",
            "constraints.1.value": "a100|h100",
        },
    ),
    (
        "a sleeper as the marathon client's create_app sends it",
        "/",
        {
            "id": "/sleep",
            "cmd": "sleep 1000",
            "cpus": 0.1,
            "mem": 32,
            "instances": 2,
            "requirePorts": False,
            "constraints": [["hostname", "MAX_PER", "1"]],
        },
        {"instances": 2, "task.cpus": 0.1, "task.mem": 32, "constraints.0.operator": "MAX_PER"},
    ),
    (
        "an app exported from Marathon 1.4 with every status field",
        "/",
        {
            "id": "/exported",
            "cmd": "env && sleep 3600",
            "args": None,
            "user": None,
            "env": {"MODE": "prod"},
            "instances": 1,
            "cpus": 0.1,
            "mem": 16,
            "disk": 0,
            "gpus": 0,
            "executor": "",
            "constraints": [],
            "uris": [],
            "fetch": [],
            "storeUrls": [],
            "backoffSeconds": 1,
            "backoffFactor": 1.15,
            "maxLaunchDelaySeconds": 3600,
            "container": None,
            "healthChecks": [],
            "readinessChecks": [],
            "dependencies": [],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
            "labels": {},
            "ipAddress": None,
            "version": "2017-03-01T10:00:00.000Z",
            "residency": None,
            "secrets": {},
            "taskKillGracePeriodSeconds": None,
            "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600},
            "killSelection": "YOUNGEST_FIRST",
            "acceptedResourceRoles": None,
            "ports": [10000],
            "portDefinitions": [{"port": 10000, "protocol": "tcp", "labels": {}}],
            "requirePorts": False,
            "versionInfo": {
                "lastScalingAt": "2017-03-01T10:00:00.000Z",
                "lastConfigChangeAt": "2017-03-01T10:00:00.000Z",
            },
            "tasksStaged": 0,
            "tasksRunning": 1,
            "tasksHealthy": 0,
            "tasksUnhealthy": 0,
            "deployments": [],
            "tasks": [
                {
                    "id": "exported.5b1c",
                    "appId": "/exported",
                    "host": "agent-1",
                    "ports": [31005],
                    "startedAt": "2017-03-01T10:00:03.000Z",
                    "version": "2017-03-01T10:00:00.000Z",
                }
            ],
            "lastTaskFailure": {
                "appId": "/exported",
                "host": "agent-2",
                "message": "Command exited with status 1",
                "state": "TASK_FAILED",
                "taskId": "exported.11aa",
                "timestamp": "2017-02-28T10:00:00.000Z",
                "version": "2017-02-28T09:00:00.000Z",
            },
        },
        {
            "task.env": {"MODE": "prod"},
            "ports": [PortSpec(port=10000)],
            "backoff.max_launch_delay": 3600,
            "task.kill_grace": 10,
        },
    ),
    (
        "a docker app run with args, as a user, with docker parameters",
        "/",
        {
            "id": "/tools/converter",
            "args": ["--input", "/in", "--output", "/out"],
            "user": "nobody",
            "container": {
                "type": "DOCKER",
                "docker": {
                    "image": "corral-test/converter",
                    "network": "HOST",
                    "privileged": False,
                    "parameters": [
                        {"key": "shm-size", "value": "256m"},
                        {"key": "ulimit", "value": "nofile=4096"},
                    ],
                    "forcePullImage": False,
                },
                "volumes": [
                    {"containerPath": "/in", "hostPath": "/data/in", "mode": "RO"},
                    {"containerPath": "/out", "hostPath": "/data/out", "mode": "RW"},
                ],
            },
            "ports": [0],
            "gpus": 1,
        },
        {
            "task.command": ["--input", "/in", "--output", "/out"],
            "task.docker.user": "nobody",
            "task.docker.parameters.0.key": "shm-size",
            "task.docker.parameters.1.value": "nofile=4096",
            "task.docker.volumes.1.container_path": "/out",
            "task.gpus": 1,
            "ports": [PortSpec(port=0)],
        },
    ),
    (
        "an app with named and labelled ports and checks on a fixed port and the second",
        "/",
        {
            "id": "/metrics",
            "cmd": "./exporter",
            "portDefinitions": [
                {"port": 9100, "name": "metrics", "labels": {"VIP_0": "/metrics:9100"}},
                {"port": 0, "name": "debug"},
                {"port": 0, "name": "stats", "protocol": "udp"},
            ],
            "healthChecks": [
                {"protocol": "TCP", "portIndex": 1},
                {"protocol": "HTTP", "port": 9100, "path": "/metrics", "ignoreHttp1xx": True},
            ],
        },
        {
            "ports.0.labels": {"VIP_0": "/metrics:9100"},
            "ports.2.protocol": "udp",
            "health_checks.0.port_index": 1,
            "health_checks.1.port": 9100,
            "health_checks.1.port_index": None,
            "health_checks.1.ignore_http_1xx": True,
        },
    ),
    (
        "a rolling update one task at a time with placement rules",
        "/",
        {
            "id": "/search",
            "cmd": "./search",
            "instances": 6,
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
            "constraints": [
                ["rack", "CLUSTER", "r1"],
                ["hostname", "UNLIKE", "gpu-.*"],
                ["zone", "GROUP_BY"],
            ],
            "taskKillGracePeriodSeconds": 30,
            "backoffSeconds": 2,
        },
        {
            "upgrade.minimum_health_capacity": 0.5,
            "upgrade.maximum_over_capacity": 0,
            "constraints.1.operator": "UNLIKE",
            "constraints.2.value": None,
            "task.kill_grace": 30,
            "backoff.seconds": 2,
        },
    ),
]
APP_IDS = [name for name, *_ in APPS]


@pytest.mark.parametrize(("name", "base", "doc", "expect"), APPS, ids=APP_IDS)
def test_a_real_world_app_translates_to_the_spec_it_means(
    name: str, base: str, doc: JSON, expect: JSON
) -> None:
    spec = app_to_spec(doc, base)
    assert {path: pick(spec, path) for path in expect} == expect


@pytest.mark.parametrize(("name", "base", "doc", "expect"), APPS, ids=APP_IDS)
def test_posting_back_what_get_answered_gives_the_same_spec(
    name: str, base: str, doc: JSON, expect: JSON
) -> None:
    spec = app_to_spec(doc, base)
    answered = render(spec)
    assert app_to_spec(answered) == spec
    # as the marathon client's update_app re-sends what it read: empties left out (a PUT
    # updates the fields it gives), status fields in
    assert app_to_spec(merge_app(answered, minimal(answered))) == spec
    status = app_status(tasks_running=1, tasks_staged=0, tasks_healthy=1, tasks_unhealthy=0)
    assert app_to_spec(answered | status) == spec
    # rendered twice, the same JSON: nothing drifts on each GET/PUT cycle
    assert render(app_to_spec(answered)) == answered


# keyword arguments of the marathon client's model constructors (marathon/models/*.py),
# which fail on any other key of the JSON they are built from
CLIENT_APP = {
    "accepted_resource_roles", "args", "backoff_factor", "backoff_seconds", "cmd",
    "constraints", "container", "cpus", "dependencies", "deployments", "disk", "env",
    "executor", "health_checks", "id", "role", "instances", "kill_selection", "labels",
    "last_task_failure", "max_launch_delay_seconds", "mem", "ports", "require_ports",
    "store_urls", "task_rate_limit", "tasks", "tasks_running", "tasks_staged",
    "tasks_healthy", "task_kill_grace_period_seconds", "tasks_unhealthy", "upgrade_strategy",
    "unreachable_strategy", "uris", "user", "version", "version_info", "ip_address", "fetch",
    "task_stats", "readiness_checks", "readiness_check_results", "secrets",
    "port_definitions", "residency", "gpus", "networks",
}  # fmt: skip
CLIENT_NESTED = {
    "container": {"docker", "type", "port_mappings", "volumes"},
    "portMappings": {"name", "container_port", "host_port", "service_port", "protocol", "labels"},
    "volumes": {"container_path", "host_path", "mode", "persistent", "external"},
    "portDefinitions": {"port", "protocol", "name", "labels"},
    "upgradeStrategy": {"maximum_over_capacity", "minimum_health_capacity"},
    "unreachableStrategy": {"inactive_after_seconds", "expunge_after_seconds"},
    "versionInfo": {"last_scaling_at", "last_config_change_at"},
    "lastTaskFailure": {
        "app_id", "host", "message", "task_id", "instance_id", "slave_id", "state",
        "timestamp", "version",
    },
}  # fmt: skip
CLIENT_GROUP = {"apps", "dependencies", "groups", "id", "pods", "version", "enforce_role"}


def _client_keys_ok(doc: JSON) -> None:
    assert {snake(k) for k in doc} <= CLIENT_APP
    for key, allowed in CLIENT_NESTED.items():
        found = doc.get(key) or (doc.get("container") or {}).get(key)
        for item in found if isinstance(found, list) else [found] if found else []:
            assert {snake(k) for k in item} <= allowed, key


@pytest.mark.parametrize(("name", "base", "doc", "expect"), APPS, ids=APP_IDS)
def test_the_app_json_has_only_keys_the_marathon_client_accepts(
    name: str, base: str, doc: JSON, expect: JSON
) -> None:
    failure = task_failure(
        app_id="/x", task_id="x.1", state="FAILED", message="exit 1", timestamp=V, version=C
    )
    answered = render(app_to_spec(doc, base)) | app_status(
        tasks_running=0,
        tasks_staged=1,
        tasks_healthy=0,
        tasks_unhealthy=0,
        deployments=["d1"],
        tasks=[],
        last_task_failure=failure,
    )
    _client_keys_ok(answered)
    json.dumps(answered, allow_nan=False)


def client_json(obj: Any) -> Any:
    """What the ``marathon`` client sends for a model object: ``to_json(minimal=True)``, its
    encoder done by hand (the one of marathon 0.13 needs ``collections.Iterable``, which
    Python 3.10 removed)."""

    def default(o: Any) -> Any:  # MarathonMinimalJsonEncoder.default
        if hasattr(o, "json_repr"):
            return default(o.json_repr(minimal=True))
        if isinstance(o, datetime):
            return o.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(o, dict):
            return {k: default(v) for k, v in o.items() if v or v in (False, 0)}
        if isinstance(o, list | tuple):
            return [default(e) for e in o if e or e in (False, 0)]
        return o

    def encode(v: Any) -> Any:  # json.dumps: native values as they are, objects by default()
        if isinstance(v, dict):
            return {k: encode(x) for k, x in v.items()}
        if isinstance(v, list):
            return [encode(x) for x in v]
        return v if isinstance(v, str | int | float | bool | None) else default(v)

    return encode(obj.json_repr(minimal=True))


# The client logs with Logger.warn (deprecated) on reading a COMMAND check's {"value": ...},
# which is how Marathon writes it.
@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("name", "base", "doc", "expect"), APPS, ids=APP_IDS)
def test_the_marathon_clients_read_modify_write_cycle_keeps_the_spec(
    name: str, base: str, doc: JSON, expect: JSON
) -> None:
    models = pytest.importorskip("marathon.models")
    spec = app_to_spec(doc, base)
    answered = render(spec) | app_status(
        tasks_running=1,
        tasks_staged=0,
        tasks_healthy=1,
        tasks_unhealthy=0,
        deployments=["d1"],
        last_task_failure=task_failure(
            app_id=spec.id,
            task_id="t.1",
            state="LOST",
            message="agent gone",
            timestamp=V,
            version=C,
        ),
    )
    read = models.MarathonApp.from_json(answered)  # get_app
    read.version = None  # update_app blanks it
    assert app_to_spec(merge_app(render(spec), client_json(read))) == spec
    read.instances = 7  # and a change goes through
    assert app_to_spec(merge_app(render(spec), client_json(read))).instances == 7


# --- every field, and Marathon's defaults

FIELDS: list[tuple[str, JSON, JSON]] = [
    ("cmd is a command line run by the shell", app(cmd="echo $HOME"), {"task.shell": "echo $HOME"}),
    (
        "args are the argv run without a shell",
        app(cmd=None, args=["/bin/echo", "a b", "$X"]),
        {"task.command": ["/bin/echo", "a b", "$X"], "task.shell": None},
    ),
    ("an empty cmd beside args is no cmd", app(cmd="", args=["/bin/true"]), {"task.shell": None}),
    (
        "env is kept as given",
        app(env={"A": "1", "EMPTY": ""}),
        {"task.env": {"A": "1", "EMPTY": ""}},
    ),
    ("instances may be zero", app(instances=0), {"instances": 0}),
    (
        "cpus, mem, disk and gpus are the task's resources",
        app(cpus=0.5, mem=256, disk=1024, gpus=2),
        {"task.cpus": 0.5, "task.mem": 256, "task.disk": 1024, "task.gpus": 2},
    ),
    (
        "a fraction of a MB is rounded up",
        app(mem=100.2, disk=0.5),
        {"task.mem": 101, "task.disk": 1},
    ),
    ("a whole number written as a double is read", app(instances=3.0), {"instances": 3}),
    (
        "constraints keep field, operator and value",
        app(constraints=[["rack", "CLUSTER", "a"], ["hostname", "UNIQUE"]]),
        {"constraints.0.value": "a", "constraints.1.operator": "UNIQUE"},
    ),
    (
        "IS is kept, @hostname is hostname, a lower-case operator and a number value are read",
        app(constraints=[["@hostname", "IS", "a1"], ["rack", "group_by", 3]]),
        {
            "constraints.0.field": "hostname",
            "constraints.0.operator": "IS",
            "constraints.1.operator": "GROUP_BY",
            "constraints.1.value": "3",
        },
    ),
    ("labels are kept", app(labels={"team": "physics"}), {"labels": {"team": "physics"}}),
    (
        "backoffSeconds, backoffFactor and maxLaunchDelaySeconds are the backoff",
        app(backoffSeconds=3, backoffFactor=1.5, maxLaunchDelaySeconds=120),
        {"backoff.seconds": 3, "backoff.factor": 1.5, "backoff.max_launch_delay": 120},
    ),
    (
        "upgradeStrategy is the upgrade",
        app(upgradeStrategy={"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2}),
        {"upgrade.minimum_health_capacity": 0.5, "upgrade.maximum_over_capacity": 0.2},
    ),
    (
        "taskKillGracePeriodSeconds is the kill grace",
        app(taskKillGracePeriodSeconds=45),
        {"task.kill_grace": 45},
    ),
    (
        "ports are bare port numbers",
        app(ports=[8080, 0]),
        {"ports": [PortSpec(port=8080), PortSpec(port=0)]},
    ),
    (
        "portDefinitions carry name, protocol and labels",
        app(portDefinitions=[{"port": 0, "name": "dns", "protocol": "udp", "labels": {"a": "b"}}]),
        {"ports": [PortSpec(port=0, name="dns", protocol="udp", labels={"a": "b"})]},
    ),
    (
        "ports and portDefinitions that agree are both accepted",
        app(ports=[80], portDefinitions=[{"port": 80, "name": "http"}]),
        {"ports": [PortSpec(port=80, name="http")]},
    ),
    (
        "requirePorts makes the ports host ports",
        app(ports=[8080], requirePorts=True),
        {"require_ports": True},
    ),
    (
        "requirePorts is kept for BRIDGE networking, where the mappings give the host ports",
        app(
            cmd=None,
            container=docker(portMappings=[{"containerPort": 80}]),
            networks=[{"mode": "container/bridge"}],
            requirePorts=True,
        ),
        {"require_ports": True, "ports": []},
    ),
    ("the default executor is accepted", app(executor="//cmd"), {"task.driver": "process"}),
    ("any resource role is accepted", app(acceptedResourceRoles=["*"], role="*"), {"instances": 1}),
    (
        "empty fetch, uris, storeUrls, secrets and readinessChecks are accepted",
        app(fetch=[], uris=[], storeUrls=[], secrets={}, readinessChecks=[]),
        {"instances": 1},
    ),
    (
        "an unreachableStrategy is accepted (the agent timeout decides)",
        app(unreachableStrategy={"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}),
        {"instances": 1},
    ),
    ("a description (not Marathon's) is ignored", app(description="hi"), {"description": ""}),
    ("an empty user of a process app is no user", app(user=""), {"task.docker": None}),
    (
        "user is the container's user",
        app(cmd=None, user="postgres", container=docker("postgres:16")),
        {"task.docker.user": "postgres"},
    ),
    (
        "a container without a network runs on the host network, with one port",
        app(cmd=None, container=docker()),
        {"task.docker.network": "HOST", "ports": [PortSpec(port=0)]},
    ),
    (
        "docker.network and networks that agree are both accepted",
        app(
            cmd=None,
            container={"type": "DOCKER", "docker": {"image": "x", "network": "HOST"}},
            networks=[{"mode": "host"}],
        ),
        {"task.docker.network": "HOST"},
    ),
    (
        "a BRIDGE container without port mappings has no port",
        app(cmd=None, container=docker(), networks=[{"mode": "container/bridge"}]),
        {"task.docker.network": "BRIDGE", "ports": []},
    ),
    (
        "a port mapping without hostPort gets any host port",
        app(
            cmd=None,
            container=docker(portMappings=[{"containerPort": 53, "protocol": "udp"}]),
            networks=[{"mode": "container/bridge"}],
        ),
        {
            "task.docker.port_mappings.0.host_port": 0,
            "task.docker.port_mappings.0.protocol": "udp",
        },
    ),
    (
        "privileged, forcePullImage and parameters are the container's",
        app(
            cmd=None,
            container={
                "docker": {
                    "image": "x",
                    "privileged": True,
                    "forcePullImage": True,
                    "parameters": [{"key": "init", "value": "true"}],
                }
            },
        ),
        {
            "task.docker.privileged": True,
            "task.docker.force_pull": True,
            "task.docker.parameters.0.key": "init",
        },
    ),
    (
        "a health check's command may be a plain string, as old clients send it",
        app(healthChecks=[{"protocol": "COMMAND", "command": "true"}]),
        {"health_checks.0.command": "true"},
    ),
    (
        "a health check's fixed port replaces the port index",
        app(healthChecks=[{"protocol": "TCP", "port": 22}]),
        {"health_checks.0.port": 22, "health_checks.0.port_index": None},
    ),
    (
        "MESOS_HTTPS is HTTPS checked by the agent",
        app(healthChecks=[{"protocol": "MESOS_HTTPS", "path": "/ok"}]),
        {"health_checks.0.protocol": "HTTPS", "health_checks.0.path": "/ok"},
    ),
    (
        "a health check has Marathon's defaults",
        app(healthChecks=[{}]),
        {
            "health_checks.0.protocol": "HTTP",
            "health_checks.0.path": "/",
            "health_checks.0.port_index": None,
            "health_checks.0.grace_period": 300,
            "health_checks.0.interval": 60,
            "health_checks.0.timeout": 20,
            "health_checks.0.max_consecutive_failures": 3,
            "health_checks.0.delay": 0,  # an HTTP check starts at once, as in Marathon
            "health_checks.0.ignore_http_1xx": False,
        },
    ),
    (
        "a TCP check keeps path and ignoreHttp1xx, which only HTTP checks use",
        app(healthChecks=[{"protocol": "TCP", "path": "/x", "ignoreHttp1xx": True}]),
        {"health_checks.0.path": "/x", "health_checks.0.ignore_http_1xx": True},
    ),
    (
        "null is the same as an absent field",
        app(container=None, ports=None, user=None, labels=None, healthChecks=None)
        | {"container": None, "labels": None},
        {"task.docker": None, "ports": [PortSpec(port=0)], "labels": {}},
    ),
]


@pytest.mark.parametrize(("name", "doc", "expect"), FIELDS, ids=[f[0] for f in FIELDS])
def test_each_marathon_field_reaches_the_spec(name: str, doc: JSON, expect: JSON) -> None:
    spec = app_to_spec(doc)
    assert {path: pick(spec, path) for path in expect} == expect
    assert app_to_spec(render(spec)) == spec


def test_what_an_app_leaves_out_has_marathons_defaults() -> None:
    spec = app_to_spec({"id": "/d", "cmd": "x"})
    assert (spec.instances, spec.task.cpus, spec.task.mem, spec.task.disk, spec.task.gpus) == (
        1,
        1.0,
        128,
        0,
        0,
    )
    assert (spec.backoff.seconds, spec.backoff.factor, spec.backoff.max_launch_delay) == (
        1.0,
        1.15,
        300.0,
    )
    assert (spec.upgrade.minimum_health_capacity, spec.upgrade.maximum_over_capacity) == (1, 1)
    assert spec.ports == [PortSpec(port=0)] and not spec.require_ports
    assert spec.health_checks == [] and spec.constraints == [] and spec.dependencies == []
    assert spec.task.driver == "process" and spec.task.env == {} and spec.labels == {}


@pytest.mark.parametrize(
    ("raw", "base", "ident"),
    [
        ("web", "/", "/web"),
        ("web", "/lab", "/lab/web"),
        ("/abs/web", "/lab", "/abs/web"),
        ("../api", "/lab/web", "/lab/api"),
        ("./db/", "/lab", "/lab/db"),
    ],
)
def test_a_relative_id_is_resolved_against_the_group(raw: str, base: str, ident: str) -> None:
    assert app_to_spec(app(id=raw), base).id == ident


# --- what Corral does not support: refused at the field's path

UNSUPPORTED: list[tuple[str, JSON, str, str]] = [
    (
        "USER networking",
        app(cmd=None, container={"docker": {"image": "x", "network": "USER"}}),
        "/container/docker/network",
        "USER networking is not supported",
    ),
    (
        "NONE networking",
        app(cmd=None, container={"docker": {"image": "x", "network": "NONE"}}),
        "/container/docker/network",
        "NONE networking is not supported",
    ),
    (
        "a container (virtual) network",
        app(cmd=None, container=docker(), networks=[{"mode": "container", "name": "dcos"}]),
        "/networks(0)/mode",
        "not supported",
    ),
    (
        "two networks",
        app(cmd=None, container=docker(), networks=[{"mode": "host"}, {"mode": "host"}]),
        "/networks",
        "one network",
    ),
    (
        "docker.network disagreeing with networks",
        app(
            cmd=None,
            container={"docker": {"image": "x", "network": "HOST"}},
            networks=[{"mode": "container/bridge"}],
        ),
        "/container/docker/network",
        "disagrees",
    ),
    ("another user for a process app", app(user="alice"), "/user", "not supported"),
    (
        "a secret reference in env",
        app(env={"DB_PASSWORD": {"secret": "db"}}),
        "/env/DB_PASSWORD",
        "secret references are not supported",
    ),
    ("secrets", app(secrets={"db": {"source": "db/pw"}}), "/secrets", "not supported"),
    ("fetch", app(fetch=[{"uri": "http://x/a.tgz"}]), "/fetch", "not supported"),
    ("uris", app(uris=["http://x/a.tgz"]), "/uris", "not supported"),
    ("storeUrls", app(storeUrls=["http://x"]), "/storeUrls", "not supported"),
    ("a custom executor", app(executor="/opt/exec"), "/executor", "not supported"),
    ("OLDEST_FIRST", app(killSelection="OLDEST_FIRST"), "/killSelection", "YOUNGEST_FIRST"),
    (
        "a disabled unreachableStrategy",
        app(unreachableStrategy="disabled"),
        "/unreachableStrategy",
        "not supported",
    ),
    (
        "an unreachableStrategy of the wrong shape",
        app(unreachableStrategy={"inactiveAfterSeconds": -1}),
        "/unreachableStrategy/inactiveAfterSeconds",
        "greater than or equal to 0",
    ),
    ("residency", app(residency={"taskLostBehavior": "WAIT_FOREVER"}), "/residency", "resident"),
    ("readinessChecks", app(readinessChecks=[{"name": "r"}]), "/readinessChecks", "not supported"),
    (
        "a reserved resource role",
        app(acceptedResourceRoles=["slave_public"]),
        "/acceptedResourceRoles",
        "not supported",
    ),
    ("a role", app(role="prod"), "/role", "not supported"),
    ("ipAddress", app(ipAddress={"networkName": "dcos"}), "/ipAddress", "not supported"),
    ("a Mesos check", app(check={"http": {"portIndex": 0}}), "/check", "not supported"),
    ("resourceLimits", app(resourceLimits={"cpus": "unlimited"}), "/resourceLimits", "limits"),
    (
        "a persistent volume",
        app(container=docker(volumes=[{"containerPath": "data", "persistent": {"size": 10}}])),
        "/container/volumes(0)/persistent",
        "persistent volumes are not supported",
    ),
    (
        "an external volume",
        app(container=docker(volumes=[{"containerPath": "/d", "external": {"name": "v"}}])),
        "/container/volumes(0)/external",
        "not supported",
    ),
    (
        "a volume without hostPath",
        app(container=docker(volumes=[{"containerPath": "/d", "mode": "RO"}])),
        "/container/volumes(0)/hostPath",
        "required",
    ),
    (
        "labels of a port mapping",
        app(
            container=docker(portMappings=[{"containerPort": 80, "labels": {"VIP_0": "x"}}]),
            networks=[{"mode": "container/bridge"}],
        ),
        "/container/portMappings(0)/labels",
        "not supported",
    ),
    (
        "the udp,tcp protocol",
        app(portDefinitions=[{"port": 0, "protocol": "udp,tcp"}]),
        "/portDefinitions(0)/protocol",
        "tcp or udp",
    ),
    (
        "portMappings at both levels",
        app(
            container={
                "docker": {"image": "x", "portMappings": [{"containerPort": 80}]},
                "portMappings": [{"containerPort": 81}],
            },
            networks=[{"mode": "container/bridge"}],
        ),
        "/container/portMappings",
        "not both",
    ),
    (
        "port mappings on the host network",
        app(container=docker(portMappings=[{"containerPort": 80}])),
        "/container/portMappings",
        "BRIDGE",
    ),
    (
        "portDefinitions of a BRIDGE container",
        app(
            container=docker(),
            networks=[{"mode": "container/bridge"}],
            portDefinitions=[{"port": 0}],
        ),
        "/portDefinitions",
        "portMappings",
    ),
    (
        "BRIDGE networking without a container",
        app(networks=[{"mode": "container/bridge"}]),
        "/networks",
        "container",
    ),
    (
        "a container without an image",
        app(container={"type": "DOCKER", "docker": {"image": ""}}),
        "/container/docker/image",
        "required",
    ),
    (
        "a MESOS container without a Docker image",
        app(container={"type": "MESOS", "volumes": []}),
        "/container/docker/image",
        "MESOS",
    ),
    (
        "registry credentials",
        app(container={"docker": {"image": "x", "credential": {"principal": "p"}}}),
        "/container/docker/credential",
        "not supported",
    ),
    (
        "an IPv6 health check",
        app(healthChecks=[{"protocol": "TCP", "ipProtocol": "IPv6"}]),
        "/healthChecks(0)/ipProtocol",
        "IPv6",
    ),
    ("an unknown field", app(cpu=2), "/cpu", "is not a Marathon field"),
    (
        "an unknown field of the container",
        app(container={"docker": {"image": "x", "tty": True}}),
        "/container/docker/tty",
        "is not a Marathon field",
    ),
]


@pytest.mark.parametrize(
    ("name", "doc", "path", "text"), UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED]
)
def test_an_unsupported_field_is_refused_naming_it(
    name: str, doc: JSON, path: str, text: str
) -> None:
    found = problems(doc)
    assert path in found, found
    assert any(text in e for e in found[path]), found[path]


# --- values the spec refuses, and JSON of the wrong type, at Marathon's paths

INVALID: list[tuple[str, JSON, str]] = [
    ("negative cpus", app(cpus=-1), "/cpus"),
    ("no memory", app(mem=0), "/mem"),
    ("too many instances", app(instances=20_000), "/instances"),
    ("a negative instance count", app(instances=-1), "/instances"),
    (
        "a health check of a port the app lacks",
        app(healthChecks=[{"portIndex": 1}]),
        "/healthChecks(0)/portIndex",
    ),
    (
        "a check of a port when there are none",
        app(ports=[], healthChecks=[{}]),
        "/healthChecks(0)/portIndex",
    ),
    (
        "both port and portIndex",
        app(healthChecks=[{"port": 80, "portIndex": 0}]),
        "/healthChecks(0)",
    ),
    (
        "a COMMAND check without command",
        app(healthChecks=[{"protocol": "COMMAND"}]),
        "/healthChecks(0)",
    ),
    (
        "a command on an HTTP check",
        app(healthChecks=[{"command": {"value": "true"}}]),
        "/healthChecks(0)/command",
    ),
    (
        "a negative grace period",
        app(healthChecks=[{"gracePeriodSeconds": -1}]),
        "/healthChecks(0)/gracePeriodSeconds",
    ),
    (
        "negative consecutive failures",
        app(healthChecks=[{"maxConsecutiveFailures": -1}]),
        "/healthChecks(0)/maxConsecutiveFailures",
    ),
    ("an HTTP path without a slash", app(healthChecks=[{"path": "health"}]), "/healthChecks(0)"),
    ("a second check's bad port", app(healthChecks=[{}, {"port": 0}]), "/healthChecks(1)/port"),
    (
        "a port name with a space",
        app(portDefinitions=[{"port": 0, "name": "a b"}]),
        "/portDefinitions(0)/name",
    ),
    ("a port number out of range", app(ports=[70_000]), "/ports(0)"),
    (
        "a port definition out of range",
        app(portDefinitions=[{"port": 70_000}]),
        "/portDefinitions(0)/port",
    ),
    (
        "two ports of one name",
        app(portDefinitions=[{"name": "a"}, {"name": "a"}]),
        "/portDefinitions",
    ),
    ("a required host port twice", app(ports=[80, 80], requirePorts=True), "/ports"),
    (
        "ports disagreeing with portDefinitions",
        app(ports=[80], portDefinitions=[{"port": 81}]),
        "/ports",
    ),
    (
        "a container port 0",
        app(
            container=docker(portMappings=[{"containerPort": 0}]),
            networks=[{"mode": "container/bridge"}],
        ),
        "/container/portMappings(0)/containerPort",
    ),
    (
        "a host port out of range in docker.portMappings",
        app(
            container={
                "docker": {
                    "image": "x",
                    "network": "BRIDGE",
                    "portMappings": [{"containerPort": 80, "hostPort": 70_000}],
                }
            }
        ),
        "/container/docker/portMappings(0)/hostPort",
    ),
    (
        "a relative host path",
        app(container=docker(volumes=[{"containerPath": "/d", "hostPath": "data"}])),
        "/container/volumes(0)/hostPath",
    ),
    (
        "a container path with ..",
        app(container=docker(volumes=[{"containerPath": "/d/../e", "hostPath": "/d"}])),
        "/container/volumes(0)/containerPath",
    ),
    (
        "a docker parameter Corral does not pass",
        app(container={"docker": {"image": "x", "parameters": [{"key": "volume-driver"}]}}),
        "/container/docker/parameters(0)/key",
    ),
    ("an unknown constraint operator", app(constraints=[["hostname", "FOO"]]), "/constraints(0)"),
    ("LIKE without a value", app(constraints=[["a", "b"], ["rack", "LIKE"]]), "/constraints(1)"),
    ("a constraint of one part", app(constraints=[["hostname"]]), "/constraints(0)"),
    ("a constraint of an object", app(constraints=[["hostname", {"op": 1}]]), "/constraints(0)"),
    ("an environment name with a dash", app(env={"MY-VAR": "1"}), "/env"),
    (
        "an upgrade that cannot progress",
        app(upgradeStrategy={"minimumHealthCapacity": 1, "maximumOverCapacity": 0}),
        "/upgradeStrategy",
    ),
    (
        "a health capacity over 1",
        app(upgradeStrategy={"minimumHealthCapacity": 2}),
        "/upgradeStrategy/minimumHealthCapacity",
    ),
    ("a backoff factor below 1", app(backoffFactor=0.5), "/backoffFactor"),
    ("a negative max launch delay", app(maxLaunchDelaySeconds=-1), "/maxLaunchDelaySeconds"),
    ("a day of kill grace", app(taskKillGracePeriodSeconds=86_400), "/taskKillGracePeriodSeconds"),
    ("an upper-case id", app(id="/Web"), "/id"),
    ("no id", app(id=None), "/id"),
    ("an id above the root", app(id="../../x"), "/id"),
    ("a bad dependency", app(dependencies=["ok", "Not_OK"]), "/dependencies(1)"),
    ("a dependency on itself", app(dependencies=["/web"]), "/dependencies"),
    ("both cmd and args", app(args=["/bin/true"]), "/args"),
    ("nothing to run", app(cmd=None), "/"),
    ("a blank cmd", app(cmd="   "), "/cmd"),
    ("an args without a program", app(cmd=None, args=[""]), "/args"),
    ("an empty label key", app(labels={"": "x"}), "/labels"),
]


@pytest.mark.parametrize(("name", "doc", "path"), INVALID, ids=[i[0] for i in INVALID])
def test_a_refused_value_is_reported_at_its_marathon_path(name: str, doc: JSON, path: str) -> None:
    found = problems(doc)
    assert path in found, found
    assert all(e and "Value error" not in e for e in found[path])


TYPES: list[tuple[str, JSON, str, str]] = [
    ("instances as a word", app(instances="three"), "/instances", "whole number"),
    ("instances as a fraction", app(instances=2.5), "/instances", "whole number"),
    ("instances as true", app(instances=True), "/instances", "whole number"),
    ("cpus as a string", app(cpus="1"), "/cpus", "must be a number"),
    ("requirePorts as a string", app(requirePorts="yes"), "/requirePorts", "true or false"),
    ("env as a list", app(env=["A=1"]), "/env", "JSON object"),
    ("an env value as a number", app(env={"N": 3}), "/env/N", "string"),
    ("ports as a string", app(ports="80"), "/ports", "JSON array"),
    ("a port as a string", app(ports=["80"]), "/ports(0)", "whole number"),
    (
        "a portIndex as a string",
        app(healthChecks=[{"portIndex": "0"}]),
        "/healthChecks(0)/portIndex",
        "whole number",
    ),
    (
        "an unknown check protocol",
        app(healthChecks=[{"protocol": "GRPC"}]),
        "/healthChecks(0)/protocol",
        "HTTP",
    ),
    (
        "a command of the wrong shape",
        app(healthChecks=[{"protocol": "COMMAND", "command": {"cmd": "x"}}]),
        "/healthChecks(0)/command",
        "value",
    ),
    (
        "an image as a number",
        app(container={"docker": {"image": 5}}),
        "/container/docker/image",
        "string",
    ),
    (
        "a volume mode in lower case",
        app(container=docker(volumes=[{"containerPath": "/a", "hostPath": "/b", "mode": "rw"}])),
        "/container/volumes(0)/mode",
        "RO",
    ),
    ("a label value as a number", app(labels={"a": 1}), "/labels/a", "string"),
    ("constraints as a string", app(constraints="hostname:UNIQUE"), "/constraints", "JSON array"),
    ("a container as a string", app(container="docker"), "/container", "JSON object"),
    ("cpus as NaN", app(cpus=float("nan")), "/cpus", "finite"),
    ("an id as a number", app(id=5), "/id", "string"),
    ("a lone surrogate in env", app(env={"A": "\ud800"}), "/env/A", "Unicode"),
    (
        "a lone surrogate in a check",
        app(healthChecks=[{"path": "/\udfff"}]),
        "/healthChecks(0)/path",
        "Unicode",
    ),
]


@pytest.mark.parametrize(("name", "doc", "path", "text"), TYPES, ids=[t[0] for t in TYPES])
def test_json_of_the_wrong_type_is_reported_at_its_path(
    name: str, doc: JSON, path: str, text: str
) -> None:
    found = problems(doc)
    assert path in found, found
    assert any(text in e for e in found[path]), found[path]


def test_a_body_that_is_not_an_object_is_refused_at_the_root() -> None:
    assert problems([{"id": "/a"}]) == {"/": ["must be a JSON object (a Marathon app)"]}


def test_every_problem_of_an_app_is_reported_at_once() -> None:
    found = problems(app(id="/Bad", user="alice", fetch=["http://x"], env={"S": {"secret": "s"}}))
    assert set(found) == {"/id", "/user", "/fetch", "/env/S"}


def test_the_error_body_is_marathons() -> None:
    with pytest.raises(MarathonInvalid) as caught:
        app_to_spec(app(cpus=-1, mem=0))
    body = error_body(caught.value)
    assert body["message"] == "Object is not valid"
    assert {d["path"] for d in body["details"]} == {"/cpus", "/mem"}
    assert all(isinstance(d["errors"], list) and d["errors"] for d in body["details"])
    assert "/cpus" in str(caught.value)


# --- groups

LAB: JSON = {
    "id": "/lab",
    "dependencies": ["/infra/dns"],
    "apps": [{"id": "portal", "cmd": "./portal", "dependencies": ["db"]}],
    "groups": [
        {
            "id": "db",
            "apps": [
                {"id": "pg", "cmd": "postgres"},
                {"id": "/lab/db/backup", "cmd": "backup", "dependencies": ["pg"]},
            ],
        },
        {"id": "/lab/workers", "dependencies": ["../db"], "apps": [{"id": "w", "cmd": "work"}]},
    ],
}


def test_a_group_resolves_relative_ids_and_gives_its_dependencies_to_its_apps() -> None:
    deps = {s.id: s.dependencies for s in group_to_specs(LAB)}
    assert deps == {
        # "db" is a group of the document: a dependency on each of its apps
        "/lab/portal": ["/lab/db/pg", "/lab/db/backup", "/infra/dns"],
        "/lab/db/pg": ["/infra/dns"],
        "/lab/db/backup": ["/lab/db/pg", "/infra/dns"],
        "/lab/workers/w": ["/infra/dns", "/lab/db/pg", "/lab/db/backup"],
    }


def test_a_group_without_id_is_the_group_it_is_posted_to() -> None:
    specs = group_to_specs({"apps": [{"id": "a", "cmd": "x"}]}, base="/lab")
    assert [s.id for s in specs] == ["/lab/a"]
    specs = group_to_specs({"id": "sub", "apps": [{"id": "a", "cmd": "x"}]}, base="/lab")
    assert [s.id for s in specs] == ["/lab/sub/a"]


def test_the_root_group_holds_top_level_apps() -> None:
    specs = group_to_specs({"id": "/", "apps": [{"id": "a", "cmd": "x"}], "groups": []})
    assert [s.id for s in specs] == ["/a"]


GROUP_ERRORS: list[tuple[str, JSON, str]] = [
    (
        "an app's bad field",
        {"id": "/lab", "apps": [{"id": "a", "cmd": "x"}, {"id": "b", "cmd": "x", "cpus": -1}]},
        "/apps(1)/cpus",
    ),
    (
        "an app without id in a subgroup",
        {"id": "/lab", "groups": [{"id": "g", "apps": [{"cmd": "x"}]}]},
        "/groups(0)/apps(0)/id",
    ),
    (
        "an app's wrong type in a subgroup",
        {"id": "/lab", "groups": [{"id": "g", "apps": [{"id": "a", "cmd": "x", "mem": "1G"}]}]},
        "/groups(0)/apps(0)/mem",
    ),
    (
        "an app given twice",
        {"id": "/lab", "apps": [{"id": "a", "cmd": "x"}, {"id": "/lab/a", "cmd": "y"}]},
        "/apps(1)/id",
    ),
    (
        "an app outside its group",
        {"id": "/lab", "apps": [{"id": "/other/a", "cmd": "x"}]},
        "/apps(0)/id",
    ),
    ("a subgroup outside its group", {"id": "/lab", "groups": [{"id": "/other"}]}, "/groups(0)/id"),
    ("a subgroup without id", {"id": "/lab", "groups": [{"apps": []}]}, "/groups(0)/id"),
    (
        "a group depending on a group inside it",
        {"id": "/lab", "dependencies": ["db"], "groups": [{"id": "db"}]},
        "/dependencies(0)",
    ),
    ("a bad group id", {"id": "/Lab"}, "/id"),
    ("pods", {"id": "/lab", "pods": [{"id": "p"}]}, "/pods"),
    ("apps as an object", {"id": "/lab", "groups": [{"id": "g", "apps": {}}]}, "/groups(0)/apps"),
    ("an app that is not an object", {"id": "/lab", "apps": ["a"]}, "/apps(0)"),
    ("an unknown group field", {"id": "/lab", "app": []}, "/app"),
]


@pytest.mark.parametrize(("name", "doc", "path"), GROUP_ERRORS, ids=[g[0] for g in GROUP_ERRORS])
def test_a_group_error_is_reported_at_its_path_in_the_document(
    name: str, doc: JSON, path: str
) -> None:
    with pytest.raises(MarathonInvalid) as caught:
        group_to_specs(doc)
    found = {d["path"] for d in caught.value.details}
    assert path in found, found


def test_a_group_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MarathonInvalid) as caught:
        group_to_specs([])
    assert caught.value.details == [
        {"path": "/", "errors": ["must be a JSON object (a Marathon group)"]}
    ]


def test_the_group_tree_is_built_from_the_ids() -> None:
    specs = group_to_specs(LAB) + [app_to_spec(app(id="/other/x"))]
    tree = specs_to_group("/lab", specs, version=V)
    assert tree["id"] == "/lab" and tree["version"] == V
    assert tree["dependencies"] == ["/infra/dns"]  # the group's own
    assert tree["groups"][1]["dependencies"] == ["/lab/db"]
    assert [a["id"] for a in tree["apps"]] == ["/lab/portal"]
    assert [g["id"] for g in tree["groups"]] == ["/lab/db", "/lab/workers"]
    assert [a["id"] for a in tree["groups"][0]["apps"]] == ["/lab/db/backup", "/lab/db/pg"]
    assert tree["groups"][0]["groups"] == []
    assert {snake(k) for k in tree} <= CLIENT_GROUP
    models = pytest.importorskip("marathon.models")
    assert len(models.MarathonGroup.from_json(tree).groups) == 2  # get_group
    root = specs_to_group("/", specs, version=V, render=lambda s: {"id": s.id})
    assert [g["id"] for g in root["groups"]] == ["/lab", "/other"]
    assert root["groups"][1]["apps"] == [{"id": "/other/x"}]


def test_a_group_posted_back_as_get_answered_gives_the_same_specs() -> None:
    specs = group_to_specs(LAB)
    tree = specs_to_group("/lab", specs, version=V)
    again = {s.id: s for s in group_to_specs(tree)}
    assert again == {s.id: s for s in specs}


# --- the status fields, partial updates and native fields


def test_the_status_fields_are_marathons() -> None:
    failure = task_failure(
        app_id="/web",
        task_id="web.3",
        state="FAILED",
        message="exited with 2",
        timestamp=V,
        version=C,
        host="node-1",
        agent_id="a1",
    )
    status = app_status(
        tasks_running=2,
        tasks_staged=1,
        tasks_healthy=2,
        tasks_unhealthy=0,
        deployments=["dep-1"],
        last_task_failure=failure,
    )
    assert status == {
        "tasksRunning": 2,
        "tasksStaged": 1,
        "tasksHealthy": 2,
        "tasksUnhealthy": 0,
        "deployments": [{"id": "dep-1"}],
        "lastTaskFailure": {
            "appId": "/web",
            "host": "node-1",
            "message": "exited with 2",
            "state": "TASK_FAILED",
            "taskId": "web.3",
            "timestamp": V,
            "version": C,
            "slaveId": "a1",
        },
    }


def test_the_app_json_answers_marathons_fields_and_versions() -> None:
    answered = render(app_to_spec(APPS[1][2]))
    assert answered["versionInfo"] == {"lastScalingAt": V, "lastConfigChangeAt": C}
    assert (answered["version"], answered["executor"], answered["killSelection"]) == (
        V,
        "",
        "YOUNGEST_FIRST",
    )
    assert answered["networks"] == [{"mode": "container/bridge"}]
    assert answered["container"]["portMappings"] == [
        {"containerPort": 80, "hostPort": 0, "servicePort": 0, "protocol": "tcp", "labels": {}}
    ]
    assert (answered["ports"], answered["portDefinitions"]) == ([], [])
    assert answered["healthChecks"][0] == {
        "protocol": "HTTP",
        "path": "/",
        "portIndex": 0,
        "gracePeriodSeconds": 300,
        "intervalSeconds": 60,
        "timeoutSeconds": 20,
        "maxConsecutiveFailures": 3,
        "delaySeconds": 0,
        "ignoreHttp1xx": False,
    }
    process = render(app_to_spec(app(constraints=[["hostname", "UNIQUE"]])))
    assert process["container"] is None and process["networks"] == [{"mode": "host"}]
    assert (process["ports"], process["portDefinitions"]) == (
        [0],
        [{"port": 0, "protocol": "tcp", "labels": {}}],
    )
    assert process["constraints"] == [["hostname", "UNIQUE"]]
    assert (process["cmd"], process["args"], process["user"]) == ("sleep 1000", None, None)
    assert (process["uris"], process["fetch"], process["storeUrls"]) == ([], [], [])


def test_a_partial_update_replaces_only_the_fields_given() -> None:
    spec = app_to_spec(APPS[3][2])
    merged = merge_app(render(spec), {"instances": 3, "cmd": None, "env": {"A": "b"}})
    updated = app_to_spec(merged)
    assert updated.instances == 3 and updated.task.env == {"A": "b"}
    assert updated.model_copy(update={"instances": 1, "task": spec.task}) == spec


@pytest.mark.parametrize(
    ("start", "patch", "expect"),
    [
        (app(), {"args": ["/bin/true"]}, {"task.command": ["/bin/true"], "task.shell": None}),
        (app(cmd=None, args=["/bin/x"]), {"cmd": "x"}, {"task.shell": "x", "task.command": None}),
        (app(ports=[80]), {"portDefinitions": [{"port": 81}]}, {"ports": [PortSpec(port=81)]}),
        (
            app(portDefinitions=[{"port": 81}]),
            {"ports": [0, 0]},
            {"ports": [PortSpec(), PortSpec()]},
        ),
        (
            app(cmd=None, container=docker()),
            {
                "container": {
                    "docker": {
                        "image": "nginx",
                        "network": "BRIDGE",
                        "portMappings": [{"containerPort": 80}],
                    }
                }
            },
            {"task.docker.network": "BRIDGE", "ports": []},
        ),
        (
            app(cmd=None, container=docker()),
            {
                "networks": [{"mode": "container/bridge"}],
                "container": docker(portMappings=[{"containerPort": 80}]),
            },
            {"task.docker.network": "BRIDGE", "ports": []},
        ),
    ],
    ids=[
        "new args replace cmd",
        "a new cmd replaces args",
        "new portDefinitions replace ports",
        "new ports replace portDefinitions",
        "a container made BRIDGE the old way drops the host network and ports",
        "networks made BRIDGE drop the host ports",
    ],
)
def test_a_partial_update_keeps_companion_fields_consistent(
    start: JSON, patch: JSON, expect: JSON
) -> None:
    updated = app_to_spec(merge_app(render(app_to_spec(start)), patch))
    assert {path: pick(updated, path) for path in expect} == expect


def test_the_marathon_clients_scale_is_a_partial_update() -> None:
    spec = app_to_spec(APPS[0][2])
    # scale_app sends MarathonApp(instances=n) minimally: nothing but instances
    assert app_to_spec(merge_app(render(spec), {"instances": 5})).instances == 5


def test_native_fields_survive_an_update_through_the_marathon_api() -> None:
    current = ServiceSpec.model_validate(
        {
            "id": "/lab/db",
            "owner": "alice",
            "description": "the database",
            "placement": "binpack",
            "priority": 5,
            "task": {
                "workdir": "/srv",
                "docker": {"image": "postgres:15", "entrypoint": ["/init"], "labels": {"a": "b"}},
            },
        }
    )
    new = app_to_spec(merge_app(render(current), {"container": docker("postgres:16")}))
    kept = keep_native_fields(new, current)
    assert (kept.owner, kept.description, kept.placement, kept.priority) == (
        "alice",
        "the database",
        "binpack",
        5,
    )
    assert kept.task.workdir == "/srv" and kept.task.docker is not None
    assert kept.task.docker.image == "postgres:16"
    assert (kept.task.docker.entrypoint, kept.task.docker.labels) == (["/init"], {"a": "b"})


NATIVE: list[tuple[str, JSON]] = [
    (
        "an HTTP check without port index, and a TCP check with a path",
        {
            "id": "/web",
            "task": {"shell": "serve"},
            "ports": [{"port": 0}],
            "health_checks": [{"protocol": "HTTP"}, {"protocol": "TCP", "path": "/x"}],
        },
    ),
    (
        "a BRIDGE container requiring its ports",
        {
            "id": "/web",
            "require_ports": True,
            "task": {"docker": {"image": "nginx", "portMappings": [{"containerPort": 80}]}},
        },
    ),
    (
        "fields Marathon JSON has no place for",
        {
            "id": "/lab/db",
            "owner": "alice",
            "description": "the database",
            "placement": "binpack",
            "priority": 5,
            "task": {
                "workdir": "/srv",
                "kill_grace": 2.5,
                "docker": {
                    "image": "postgres:16",
                    "network": "HOST",
                    "entrypoint": ["/init"],
                    "labels": {"a": "b"},
                },
            },
            "backoff": {"seconds": 1.5},
        },
    ),
    ("a process service without ports", {"id": "/w", "task": {"command": ["/bin/w"]}}),
]


@pytest.mark.parametrize(("name", "native"), NATIVE, ids=[n[0] for n in NATIVE])
def test_a_native_service_scaled_through_the_marathon_api_keeps_its_config(
    name: str, native: JSON
) -> None:
    current = ServiceSpec.model_validate(native)
    scaled = app_to_spec(merge_app(render(current), {"instances": 4}))
    kept = keep_native_fields(scaled, current)
    assert kept.instances == 4 and kept.same_config(current)


# --- the round trip, for any app Marathon JSON can say

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
# Any text a process can be handed: NUL bytes are refused (tests/marathon/test_limits.py).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=20)
SECONDS = st.integers(0, 3600)


@st.composite
def marathon_apps(draw: st.DrawFn) -> JSON:
    """A valid Marathon app definition, written in any of the forms clients use."""
    doc: JSON = {"id": "/" + "/".join(draw(st.lists(NAMES, min_size=1, max_size=3)))}
    container = draw(st.booleans())
    bridge = container and draw(st.booleans())
    run = draw(st.sampled_from(["cmd", "args"] + (["image"] if container else [])))
    if run == "cmd":
        doc["cmd"] = draw(TEXT.filter(str.strip))
    elif run == "args":
        doc["args"] = draw(st.lists(TEXT, min_size=1, max_size=4))
    names = draw(st.lists(st.from_regex(r"[a-z_]{1,6}", fullmatch=True), unique=True, max_size=3))
    if container:
        c: JSON = {
            "type": draw(st.sampled_from(["DOCKER", "MESOS"])),
            "docker": {
                "image": draw(st.from_regex(r"[a-z]{1,8}(:[0-9]{1,2})?", fullmatch=True)),
                "forcePullImage": draw(st.booleans()),
                "privileged": draw(st.booleans()),
                "parameters": draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {"key": st.sampled_from(["shm-size", "init"]), "value": NAMES}
                        ),
                        max_size=2,
                    )
                ),
            },
            "volumes": [
                {"containerPath": f"/c/{n}", "hostPath": f"/h/{n}", "mode": m}
                for n, m in draw(
                    st.lists(st.tuples(NAMES, st.sampled_from(["RO", "RW"])), max_size=2)
                )
            ],
        }
        if bridge:
            mappings = [
                {
                    "containerPort": draw(st.integers(1, 65535)),
                    "hostPort": draw(st.sampled_from([0, draw(st.integers(1, 65535))])),
                    "protocol": draw(st.sampled_from(["tcp", "udp"])),
                }
                | ({"name": name} if draw(st.booleans()) else {})
                for name in names
            ]
            if draw(st.booleans()):
                c["portMappings"] = mappings
                doc["networks"] = [{"mode": "container/bridge"}]
            else:
                c["docker"] |= {"network": "BRIDGE", "portMappings": mappings}
        elif draw(st.booleans()):
            c["docker"]["network"] = "HOST"
        if draw(st.booleans()):
            doc["user"] = draw(NAMES)
        doc["container"] = c
    port_count = len(names) if bridge else 1
    if not bridge:
        form = draw(st.sampled_from(["none", "ports", "portDefinitions"]))
        numbers = [draw(st.sampled_from([0, 1000 + i])) for i in range(len(names))]
        if form == "ports":
            doc["ports"] = numbers
            port_count = len(numbers)
        elif form == "portDefinitions":
            doc["portDefinitions"] = [
                {
                    "port": p,
                    "name": n,
                    "protocol": draw(st.sampled_from(["tcp", "udp"])),
                    "labels": draw(st.dictionaries(NAMES, NAMES, max_size=2)),
                }
                for p, n in zip(numbers, names, strict=True)
            ]
            port_count = len(numbers)
        doc["requirePorts"] = draw(st.booleans())
    checks = []
    for _ in range(draw(st.integers(0, 2))):
        interval = draw(st.integers(1, 120))
        check: JSON = {
            "protocol": draw(
                st.sampled_from(["HTTP", "HTTPS", "TCP", "MESOS_HTTP", "MESOS_TCP"])
                if port_count
                else st.just("COMMAND")
            ),
            "gracePeriodSeconds": draw(SECONDS),
            "intervalSeconds": interval,
            "timeoutSeconds": draw(st.integers(1, 120)),
            "maxConsecutiveFailures": draw(st.integers(0, 10)),
            "delaySeconds": draw(st.integers(0, 60)),
        }
        if check["protocol"] == "COMMAND":
            check["command"] = {"value": draw(TEXT.filter(str.strip))}
        elif draw(st.booleans()):
            check["portIndex"] = draw(st.integers(0, port_count - 1))
        if "HTTP" in check["protocol"]:
            check["path"] = "/" + draw(NAMES)
            check["ignoreHttp1xx"] = draw(st.booleans())
        checks.append(check)
    doc["healthChecks"] = checks
    doc["env"] = draw(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), TEXT))
    doc["labels"] = draw(st.dictionaries(NAMES, TEXT, max_size=3))
    doc["instances"] = draw(st.integers(0, 50))
    doc["cpus"] = draw(st.floats(0.01, 16))
    doc["mem"] = draw(st.integers(1, 65536))
    doc["disk"] = draw(st.integers(0, 10000))
    doc["gpus"] = draw(st.integers(0, 4))
    doc["constraints"] = draw(
        st.lists(
            st.sampled_from(
                [
                    ["hostname", "UNIQUE"],
                    ["rack", "CLUSTER", "a"],
                    ["rack", "GROUP_BY", "3"],
                    ["zone", "GROUP_BY"],
                    ["hostname", "LIKE", "node-[0-9]+"],
                    ["hostname", "UNLIKE", "gpu.*"],
                    ["hostname", "MAX_PER", "2"],
                ]
            ),
            max_size=3,
        )
    )
    doc["backoffSeconds"] = draw(SECONDS)
    doc["backoffFactor"] = draw(st.floats(1, 10))
    doc["maxLaunchDelaySeconds"] = draw(SECONDS)
    minimum, maximum = draw(
        st.tuples(st.floats(0, 1), st.floats(0, 1)).filter(lambda mm: mm != (1, 0))
    )
    doc["upgradeStrategy"] = {"minimumHealthCapacity": minimum, "maximumOverCapacity": maximum}
    if draw(st.booleans()):
        doc["taskKillGracePeriodSeconds"] = draw(SECONDS)
    doc["dependencies"] = draw(st.lists(NAMES.map(lambda n: "/dep/" + n), max_size=2))
    return doc


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
@settings(max_examples=300, deadline=None)
@given(marathon_apps())
def test_any_app_read_back_from_get_is_the_same_spec(doc: JSON) -> None:
    spec = app_to_spec(doc)
    answered = render(spec)
    assert app_to_spec(answered) == spec
    assert app_to_spec(merge_app(answered, minimal(answered))) == spec
    assert app_to_spec(json.loads(json.dumps(answered))) == spec
    _client_keys_ok(answered)
    models = pytest.importorskip("marathon.models")
    read = models.MarathonApp.from_json(answered)
    assert app_to_spec(merge_app(answered, client_json(read))) == spec
    assert spec.task.cpus == doc["cpus"] and spec.instances == doc["instances"]
