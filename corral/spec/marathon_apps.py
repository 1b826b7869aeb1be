"""A Marathon app definition to Corral's ServiceSpec.

Marathon's names map to native ones: ``cmd`` is ``task.shell`` (run by ``/bin/sh -c``),
``args`` is ``task.command`` (argv), a container is ``task.driver = "docker"`` with
``task.docker``; ``ports``/``portDefinitions`` are ``ports``, ``backoff*`` is ``backoff``,
``upgradeStrategy`` is ``upgrade``, ``taskKillGracePeriodSeconds`` is ``task.kill_grace``.
Marathon's defaults apply to what is left out, including its one default port for an app that is
not a BRIDGE container.

What Corral cannot do is refused with the Marathon path of the field, never dropped. A few values
are accepted and not kept because they change nothing Corral does: ``servicePort`` of port
mappings (a load balancer's port; Corral allocates none), ``unreachableStrategy`` (tasks of a
lost agent are replaced after the cluster's agent timeout), ``description`` (not Marathon's) and
the read-only fields GET answers (``version``, ``tasksRunning``...). Some are read as their
Corral equivalent: ``MESOS_HTTP``/``MESOS_HTTPS``/``MESOS_TCP`` checks are HTTP/HTTPS/TCP (the
agent runs every check), the ``IS`` operator is ``CLUSTER`` with a value, the ``@hostname`` field
``hostname``. ``user`` is the container's user; a task without a container runs as the agent's
own user, so ``user`` on such an app is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import ValidationError

from corral.spec.jobs import unencodable_path
from corral.spec.marathon_errors import MarathonInvalid, SpecPaths, input_errors
from corral.spec.marathon_models import App, Container, PortDefinition
from corral.spec.marathon_unsupported import unsupported
from corral.spec.services import ServiceSpec, normalize_service_id

Network = Literal["BRIDGE", "HOST"]
JSON = dict[str, Any]

_PROTOCOLS = ("tcp", "udp")


def app_to_spec(doc: Any, base: str = "/") -> ServiceSpec:
    """The ServiceSpec a Marathon app definition means.

    ``doc`` is the JSON object a client posts; a relative ``id`` (and each relative dependency)
    is resolved against ``base``, the group the app is posted to. Raises ``MarathonInvalid``
    with every problem at its Marathon path: JSON of the wrong type, fields Corral does not
    support, and values the ServiceSpec refuses. A ``version`` in ``doc`` is ignored: a PUT of
    only ``{"version": ...}`` is Marathon's rollback, for the API to recognise first.
    """
    return translate(doc, base)


def translate(
    doc: Any,
    base: str,
    inherited: Sequence[str] = (),
    expand: Callable[[str], list[str]] | None = None,
) -> ServiceSpec:
    """``app_to_spec`` for an app of a group: ``inherited`` are the (resolved) dependencies of
    the enclosing groups, ``expand`` turns a dependency on a group into its apps."""
    if not isinstance(doc, dict):
        raise MarathonInvalid([("/", "must be a JSON object (a Marathon app)")])
    where = unencodable_path(doc, "")
    if where is not None:  # JSON may carry lone surrogates ("\ud800"), which cannot be stored
        path = "/" + re.sub(r"\[(\d+)\]", r"(\1)", where).replace(".", "/")
        raise MarathonInvalid([(path, "text is not valid Unicode (a lone surrogate)")])
    try:
        app = App.model_validate(doc)
    except ValidationError as e:
        raise input_errors(e) from None
    reader = _Reader(app, base)
    spec = reader.spec(inherited, expand or (lambda dep: [dep]))
    if reader.problems:
        raise MarathonInvalid(reader.problems)
    try:
        return ServiceSpec.model_validate(spec)
    except ValidationError as e:
        raise reader.paths.errors(e) from None


class _Reader:
    """One app's translation: the native spec, the problems found, where each part came from."""

    def __init__(self, app: App, base: str) -> None:
        self.app = app
        self.base = base
        self.problems: list[tuple[str, str]] = []
        self.paths = SpecPaths()

    def problem(self, path: str, text: str) -> None:
        self.problems.append((path, text))

    def spec(self, inherited: Sequence[str], expand: Callable[[str], list[str]]) -> JSON:
        app = self.app
        self.problems += unsupported(app)
        ident = self._id()
        network = self._network()
        docker = self._docker(network)
        task = self._task(docker)
        ports = self._ports(network)
        count = len(docker["portMappings"]) if docker and network == "BRIDGE" else len(ports)
        return {
            "id": ident,
            "instances": app.instances,
            "task": task,
            "ports": ports,
            # Marathon ignores requirePorts unless on the host network, and so does the
            # scheduler (a BRIDGE app's fixed host ports are its mappings'): kept as given.
            "require_ports": app.require_ports,
            "health_checks": self._health_checks(count),
            "backoff": {
                "seconds": app.backoff_seconds,
                "factor": app.backoff_factor,
                "max_launch_delay": app.max_launch_delay_seconds,
            },
            "upgrade": {
                "minimum_health_capacity": app.upgrade_strategy.minimum_health_capacity,
                "maximum_over_capacity": app.upgrade_strategy.maximum_over_capacity,
            },
            "constraints": self._constraints(),
            "labels": app.labels,
            "dependencies": self._dependencies(ident, inherited, expand),
        }

    def _id(self) -> str:
        if not self.app.id:
            self.problem("/id", "required: the app's id")
            return "/"
        try:
            return normalize_service_id(self.app.id, self.base)
        except ValueError as e:
            self.problem("/id", str(e))
            return "/"

    def _network(self) -> Network:
        """BRIDGE or HOST, from ``networks`` (1.5+) or ``container.docker.network`` (older)."""
        app = self.app
        chosen: Network | None = None
        if len(app.networks) > 1:
            self.problem("/networks", "one network is supported: host or container/bridge")
        elif app.networks:
            net = app.networks[0]
            if net.mode == "container":
                self.problem(
                    "/networks(0)/mode",
                    "container (virtual) networks are not supported; use host or container/bridge",
                )
            else:
                chosen = "BRIDGE" if net.mode == "container/bridge" else "HOST"
            if net.name is not None and net.mode != "container":
                self.problem("/networks(0)/name", "only container networks have a name")
            if net.labels:
                self.problem("/networks(0)/labels", "network labels are not supported")
        docker = app.container.docker if app.container else None
        legacy = docker.network if docker else None
        if legacy in ("USER", "NONE"):
            self.problem(
                "/container/docker/network", f"{legacy} networking is not supported; BRIDGE or HOST"
            )
        elif legacy is not None:
            self.paths.network("/container/docker/network")
            if chosen is not None and chosen != legacy:
                self.problem(
                    "/container/docker/network", f"{legacy} disagrees with networks: give one"
                )
            return "BRIDGE" if legacy == "BRIDGE" else "HOST"
        return chosen or "HOST"

    def _docker(self, network: Network) -> JSON | None:
        app, c = self.app, self.app.container
        if c is None:
            if network == "BRIDGE":
                self.problem("/networks", "BRIDGE networking is for containers: give container")
            return None
        d = c.docker
        image = d.image.strip() if d else ""
        if not image:
            self.problem(
                "/container/docker/image",
                f"required: Corral runs {c.type} containers from Docker images",
            )
        if d is not None and d.credential is not None:
            self.problem("/container/docker/credential", "registry credentials are not supported")
        if d is not None and d.pull_config is not None:
            self.problem("/container/docker/pullConfig", "registry credentials are not supported")
        return {
            "image": image,
            "user": app.user or None,
            "network": network,
            "portMappings": self._port_mappings(c, network),
            "volumes": self._volumes(c),
            "forcePullImage": d.force_pull_image if d else False,
            "privileged": d.privileged if d else False,
            "parameters": [{"key": p.key, "value": p.value} for p in (d.parameters if d else [])],
        }

    def _port_mappings(self, c: Container, network: Network) -> list[JSON]:
        legacy = c.docker.port_mappings if c.docker else []
        if legacy and c.port_mappings:
            self.problem(
                "/container/portMappings", "give portMappings or docker.portMappings, not both"
            )
        source = "/container/docker/portMappings" if legacy else "/container/portMappings"
        mappings = legacy or c.port_mappings
        self.paths.port_mappings(source)
        if mappings and network != "BRIDGE":
            self.problem(
                source,
                'port mappings need BRIDGE networking (networks [{"mode": "container/bridge"}]); '
                "with HOST networking give portDefinitions",
            )
        out = []
        for i, m in enumerate(mappings):
            at = f"{source}({i})"
            if m.protocol not in _PROTOCOLS:
                self.problem(f"{at}/protocol", f"{m.protocol!r} is not supported: tcp or udp")
            if m.labels:
                self.problem(f"{at}/labels", "labels of port mappings are not supported")
            if m.network_names:
                self.problem(f"{at}/networkNames", "container networks are not supported")
            out.append(
                {
                    "containerPort": m.container_port,
                    "hostPort": m.host_port,
                    "protocol": m.protocol,
                    "name": m.name,
                }
            )
        self._distinct_names([m.name for m in mappings], source)
        return out

    def _volumes(self, c: Container) -> list[JSON]:
        out = []
        for i, v in enumerate(c.volumes):
            at = f"/container/volumes({i})"
            kinds = [k for k in ("persistent", "external", "secret") if getattr(v, k) is not None]
            for kind in kinds:
                self.problem(f"{at}/{kind}", f"{kind} volumes are not supported; mount a hostPath")
            if v.host_path is None and not kinds:
                self.problem(f"{at}/hostPath", "required: the host path to mount")
            out.append(
                {"containerPath": v.container_path, "hostPath": v.host_path or "/", "mode": v.mode}
            )
        return out

    def _task(self, docker: JSON | None) -> JSON:
        app = self.app
        cmd = app.cmd or None  # "" is no command, as an empty args is
        args = app.args or None
        if cmd is not None and args is not None:
            self.problem("/args", "give cmd or args, not both")
        if cmd is None and args is None and docker is None:
            self.problem("/", "give cmd, args or a container image: what the app runs")
        if app.user and docker is None:
            self.problem(
                "/user",
                "running a process task as another user is not supported: tasks without a "
                "container run as the agent's user (leave user out, or give a container)",
            )
        task: JSON = {
            "env": self._env(),
            "cpus": app.cpus,
            # Marathon counts MB as a double; a fraction is rounded up, never to less.
            "mem": math.ceil(app.mem),
            "disk": math.ceil(app.disk),
            "gpus": app.gpus,
        }
        if cmd is not None:
            task["shell"] = cmd
        if args is not None:
            task["command"] = args
        if app.task_kill_grace_period_seconds is not None:
            task["kill_grace"] = app.task_kill_grace_period_seconds
        if docker is not None:
            task["driver"] = "docker"
            task["docker"] = docker
        return task

    def _env(self) -> dict[str, str]:
        env = {}
        for name, value in self.app.env.items():
            if isinstance(value, str):
                env[name] = value
            elif isinstance(value, dict) and "secret" in value:
                self.problem(f"/env/{name}", "secret references are not supported")
            else:
                self.problem(f"/env/{name}", "must be a string")
        return env

    def _ports(self, network: Network) -> list[JSON]:
        app = self.app
        numbers, definitions = app.ports, app.port_definitions
        if network == "BRIDGE":
            for path, value in (("/ports", numbers), ("/portDefinitions", definitions)):
                if value:
                    self.problem(
                        path, "a BRIDGE container publishes ports with container.portMappings"
                    )
            return []
        if numbers is not None and definitions is not None:
            if numbers != [d.port for d in definitions]:
                self.problem("/ports", "disagrees with portDefinitions: give one of them")
        if definitions is not None:
            path = "/portDefinitions"
            self.paths.ports(path, whole_items=False)
        elif numbers is not None:
            path = "/ports"
            self.paths.ports(path, whole_items=True)
            definitions = [PortDefinition.model_validate({"port": p}) for p in numbers]
        else:
            # Marathon's default: one port, any free one, for an app that is not BRIDGE.
            return [{"port": 0}]
        for i, d in enumerate(definitions):
            if d.protocol not in _PROTOCOLS:
                self.problem(
                    f"{path}({i})/protocol", f"{d.protocol!r} is not supported: tcp or udp"
                )
        self._distinct_names([d.name for d in definitions], path)
        if app.require_ports:
            fixed = [d.port for d in definitions if d.port]
            for port in sorted({p for p in fixed if fixed.count(p) > 1}):
                self.problem(path, f"host port {port} is required twice")
        return [
            {"port": d.port, "name": d.name, "protocol": d.protocol, "labels": d.labels}
            for d in definitions
        ]

    def _distinct_names(self, names: Sequence[str | None], path: str) -> None:
        given = [n for n in names if n]
        for name in sorted({n for n in given if given.count(n) > 1}):
            self.problem(path, f"two ports are named {name!r}")

    def _health_checks(self, port_count: int) -> list[JSON]:
        out = []
        for i, h in enumerate(self.app.health_checks):
            at = f"/healthChecks({i})"
            # MESOS_* checks run on the agent; Corral's agent runs every check.
            protocol = h.protocol.removeprefix("MESOS_")
            # Marathon runs HTTP, HTTPS and TCP checks itself, at once (their delaySeconds,
            # which it exports as 15, is ignored); Mesos runs COMMAND and MESOS_* checks
            # after delaySeconds.
            mesos = protocol == "COMMAND" or h.protocol.startswith("MESOS_")
            if h.ip_protocol != "IPv4":
                self.problem(f"{at}/ipProtocol", "IPv6 health checks are not supported")
            # path and ignoreHttp1xx only matter to HTTP(S) checks; they are kept for every
            # check, so that what GET answered reads back the same.
            check: JSON = {
                "protocol": protocol,
                "path": h.path or "/",
                "ignore_http_1xx": h.ignore_http1xx,
                "grace_period": h.grace_period_seconds,
                "interval": h.interval_seconds,
                "timeout": h.timeout_seconds,
                "max_consecutive_failures": h.max_consecutive_failures,
                "delay": h.delay_seconds if mesos else 0.0,
                "port_index": h.port_index,
                "port": h.port,
            }
            if protocol == "COMMAND":
                check["command"] = h.command
            elif h.command is not None:
                self.problem(f"{at}/command", f"command is for COMMAND checks, not {h.protocol}")
            # Without port or portIndex a check is of the first port (Marathon's portIndex 0).
            index = h.port_index or 0
            if protocol != "COMMAND" and h.port is None and index >= port_count:
                self.problem(
                    f"{at}/portIndex", f"portIndex {index} names no port: the app has {port_count}"
                )
            out.append(check)
        return out

    def _constraints(self) -> list[list[str]]:
        out = []
        for i, c in enumerate(self.app.constraints):
            at = f"/constraints({i})"
            if not 2 <= len(c) <= 3:
                self.problem(at, "a constraint is [field, operator] or [field, operator, value]")
                continue
            if any(isinstance(x, bool) or not isinstance(x, str | int) for x in c):
                self.problem(at, "the field, operator and value of a constraint are strings")
                continue
            field, operator, *value = (str(x) for x in c)
            operator = operator.upper()
            # Marathon 1.5's IS is CLUSTER for the text values agents have (the scheduler
            # reads it so; it is kept, to read back as written); @hostname its name for the
            # agent's host name.
            if operator == "IS" and not value:
                self.problem(at, "IS needs a value: [field, IS, value]")
                continue
            field = "hostname" if field == "@hostname" else field
            out.append([field, operator, *value])
        return out

    def _dependencies(
        self, ident: str, inherited: Sequence[str], expand: Callable[[str], list[str]]
    ) -> list[str]:
        out: list[str] = []
        for i, dep in enumerate(self.app.dependencies):
            try:
                out += expand(normalize_service_id(dep, self.base))
            except ValueError as e:
                self.problem(f"/dependencies({i})", str(e))
        if ident in out:
            self.problem("/dependencies", "an app cannot depend on itself")
        out += [d for d in inherited if d != ident]
        return list(dict.fromkeys(out))
