"""Between a task and the Engine API: the body of ``POST /containers/create`` for a launch, the
checks made before it, and what a container's inspect data says about how the task ended.

Pure except for ``check_volumes``, which looks at the host's paths: the executor calls these, the
tests call them with no Docker at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from corral.agent.executors.base import LaunchError, TaskExit
from corral.agent.executors.process import describe_exit, shell_status, signal_name
from corral.agent.gpus import gpu_env
from corral.agent.ports import from_mappings, port_env
from corral.spec.docker import DockerSpec, Parameter
from corral.spec.protocol import HostPort, TaskLaunch

JSON = dict[str, Any]  # a body of the Engine API, as Docker documents it

# Where the task's sandbox appears inside the container, as Mesos mounts it: images written for
# Mesos and Marathon find their files there through MESOS_SANDBOX.
SANDBOX_MOUNT = "/mnt/mesos/sandbox"
TASK_ID_LABEL = "corral.task_id"
AGENT_ID_LABEL = "corral.agent_id"

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)


def is_under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it, comparing whole path components.

    ``/data2`` is not under ``/data``. Both should be absolute and normalized.
    """
    return os.path.commonpath([path, root]) == root


def check_privilege(spec: DockerSpec, allow_privileged: bool) -> None:
    """Refuse what reaches outside the container unless the agent's admin allowed it."""
    needs = spec.needs_privilege()
    if needs is not None and not allow_privileged:
        raise LaunchError(
            f"{needs} needs a privileged container, which this agent does not allow "
            "(start it with --allow-privileged)"
        )


def check_volumes(
    spec: DockerSpec, allowed: Sequence[Path], data_dir: Path | None = None
) -> list[str]:
    """The resolved host path of each volume; each must exist and lie under one of ``allowed``
    (symbolic links resolved), and none in the agent's ``data_dir`` (sandboxes, journal).

    Resolving first means a link inside an allowed path cannot lead elsewhere; the executor
    then mounts exactly the resolved paths (``docker_volumes``). A missing path is refused, as
    Docker would silently create it as an empty directory owned by root.
    """
    roots = [os.path.realpath(root) for root in allowed]
    own = None if data_dir is None else os.path.realpath(data_dir)
    resolved = []
    for i, volume in enumerate(spec.volumes):
        try:
            real = os.path.realpath(volume.host_path)
        except OSError:  # a link it met was gone when read: the path is being changed
            raise LaunchError(f"volumes[{i}].host_path changed while it was checked") from None
        if not any(is_under(real, root) for root in roots):
            shown = ", ".join(str(root) for root in allowed) or "none configured"
            raise LaunchError(
                f"volumes[{i}].host_path {volume.host_path} is not under an allowed path ({shown})"
            )
        if own is not None and is_under(real, own):
            raise LaunchError(f"volumes[{i}].host_path is inside the agent's own data dir")
        if not os.path.exists(real):
            raise LaunchError(f"volumes[{i}].host_path {volume.host_path} does not exist")
        resolved.append(real)
    return resolved


def hide_paths(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each path of ``names`` replaced by its name there, longest path first (so
    a path inside another keeps its own name)."""
    for path in sorted(names, key=len, reverse=True):
        text = text.replace(path, names[path])
    return text


def host_ports_wanted(launch: TaskLaunch, spec: DockerSpec) -> list[HostPort]:
    """The host ports a container asks for, in ``PORT0..n`` order.

    On BRIDGE those its port mappings publish. On HOST the container binds host ports itself:
    those of ``launch.ports``, or (as before these existed) its port mappings' host ports.
    """
    if spec.network == "BRIDGE":
        if launch.ports:
            raise LaunchError(
                "a BRIDGE container publishes ports with docker.port_mappings, not ports"
            )
        return from_mappings(spec.port_mappings)
    return list(launch.ports) if launch.ports else from_mappings(spec.port_mappings)


def task_env(
    launch: TaskLaunch, spec: DockerSpec, host_ports: Sequence[int], hostname: str
) -> dict[str, str]:
    """The task's environment inside the container (the image's own is kept underneath).

    ``host_ports`` holds the port given for each of ``host_ports_wanted``. The agent's facts
    (sandbox, ports, host) are set after ``launch.env``, so they are right.
    """
    env = {
        "CORRAL_TASK_ID": launch.task_id,
        "CORRAL_JOB": launch.job,
        "MESOS_TASK_ID": launch.task_id,
        **launch.env,
    }
    env.update(port_env(host_ports_wanted(launch, spec), host_ports))
    # Inside the container the runtime numbers its GPUs from 0: CUDA needs no indices of ours.
    env.update(gpu_env(launch, cuda=False))
    env.update(HOST=hostname, MESOS_SANDBOX=SANDBOX_MOUNT, CORRAL_SANDBOX=SANDBOX_MOUNT)
    return env


def device_requests(launch: TaskLaunch) -> list[JSON]:
    """``HostConfig.DeviceRequests`` for the GPUs given to the task (``docker run --gpus
    '"device=0,1"'``): NVIDIA's runtime hands exactly those to the container."""
    if not launch.gpu_devices:
        return []
    return [
        {
            "Driver": "nvidia",
            "Count": 0,  # the devices are named: no count
            "DeviceIDs": [str(i) for i in launch.gpu_devices],
            "Capabilities": [["gpu"]],
        }
    ]


def command_fields(launch: TaskLaunch, spec: DockerSpec) -> JSON:
    """``Entrypoint`` and ``Cmd``: exactly what the launch says, the image's defaults otherwise.

    A shell string runs under ``/bin/sh -c`` in place of any entrypoint; an argv is the ``Cmd``
    for the image's entrypoint (or ``spec.entrypoint``); neither keeps the image's ``Cmd``.
    """
    if launch.command is not None and launch.shell is not None:
        raise LaunchError("give either command or shell, not both")
    if launch.shell is not None:
        return {"Entrypoint": ["/bin/sh", "-c"], "Cmd": [launch.shell]}
    fields: JSON = {}
    if spec.entrypoint is not None:
        fields["Entrypoint"] = list(spec.entrypoint)
    if launch.command:
        fields["Cmd"] = list(launch.command)
    return fields


def workdir(launch: TaskLaunch) -> str | None:
    """The container's working directory: ``launch.workdir``, a relative one in the sandbox."""
    if not launch.workdir:
        return None
    return os.path.normpath(os.path.join(SANDBOX_MOUNT, launch.workdir))


def parse_bytes(text: str) -> int:
    """``64m`` as 67108864, the way ``docker run`` reads sizes (k, m, g, t are powers of 1024)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("", "true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("expected true or false")


def _ulimit(value: str) -> JSON:
    name, sep, limits = value.partition("=")
    if not sep or not name:
        raise ValueError("expected name=soft[:hard]")
    soft, _, hard = limits.partition(":")
    return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}


def _device(value: str) -> JSON:
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError("expected host-path[:container-path[:permissions]]")
    inside = parts[1] if len(parts) > 1 and parts[1] else parts[0]
    return {
        "PathOnHost": parts[0],
        "PathInContainer": inside,
        "CgroupPermissions": parts[2] if len(parts) == 3 else "rwm",
    }


def _tmpfs(value: str) -> tuple[str, str]:
    path, _, options = value.partition(":")
    if not path.startswith("/"):
        raise ValueError("expected /container-path[:options]")
    return path, options


def _key_value(value: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not key:
        raise ValueError("expected key=value")
    return key, rest if sep else ""


# Each parameter sets one field: (in HostConfig or Config, the field, how to read the value,
# whether values add up (a list or a map) or the last one wins).
_Reader = Callable[[str], Any]
_PARAMETERS: dict[str, tuple[str, str, _Reader, bool]] = {
    "shm-size": ("HostConfig", "ShmSize", parse_bytes, False),
    "ulimit": ("HostConfig", "Ulimits", _ulimit, True),
    "hostname": ("Config", "Hostname", str, False),
    "init": ("HostConfig", "Init", _flag, False),
    "read-only": ("HostConfig", "ReadonlyRootfs", _flag, False),
    "tmpfs": ("HostConfig", "Tmpfs", _tmpfs, True),
    "cap-drop": ("HostConfig", "CapDrop", str, True),
    "cap-add": ("HostConfig", "CapAdd", str, True),
    "label": ("Config", "Labels", _key_value, True),
    "memory-swappiness": ("HostConfig", "MemorySwappiness", int, False),
    "stop-signal": ("Config", "StopSignal", str, False),
    "log-driver": ("HostConfig", "LogConfig", lambda v: {"Type": v, "Config": {}}, False),
    "pid": ("HostConfig", "PidMode", str, False),
    "ipc": ("HostConfig", "IpcMode", str, False),
    "uts": ("HostConfig", "UTSMode", str, False),
    "device": ("HostConfig", "Devices", _device, True),
    "security-opt": ("HostConfig", "SecurityOpt", str, True),
}


def apply_parameters(parameters: Sequence[Parameter], config: JSON, host_config: JSON) -> None:
    """Set the fields ``docker run --key=value`` would set, for each parameter in order."""
    for i, parameter in enumerate(parameters):
        entry = _PARAMETERS.get(parameter.key)
        if entry is None:
            raise LaunchError(
                f"parameters[{i}]: docker parameter {parameter.key!r} is not supported"
            )
        section, field, read, adds_up = entry
        target = host_config if section == "HostConfig" else config
        try:
            value = read(parameter.value)
        except ValueError as exc:
            raise LaunchError(
                f"parameters[{i}] ({parameter.key}={parameter.value}): {exc}"
            ) from exc
        if not adds_up:
            target[field] = value
        elif isinstance(value, tuple):  # a (key, value) pair of a map
            target.setdefault(field, {})[value[0]] = value[1]
        else:
            target.setdefault(field, []).append(value)


def _ports(spec: DockerSpec, host_ports: Sequence[int]) -> tuple[JSON, JSON]:
    """``ExposedPorts`` and ``PortBindings``; none on the host network, where ports are shared.

    On BRIDGE ``host_ports`` holds the host port of each port mapping.
    """
    if spec.network == "HOST":
        return {}, {}
    exposed: JSON = {}
    bindings: JSON = {}
    for mapping, port in zip(spec.port_mappings, host_ports, strict=True):
        key = f"{mapping.container_port}/{mapping.protocol}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": "", "HostPort": str(port)})
    return exposed, bindings


def container_config(
    launch: TaskLaunch,
    spec: DockerSpec,
    *,
    agent_id: str,
    sandbox: Path,
    host_ports: Sequence[int],
    hostname: str,
    volume_sources: Sequence[str],
) -> JSON:
    """The body of ``POST /containers/create`` for ``launch``.

    ``host_ports`` holds the host port of each of ``host_ports_wanted`` (zeros resolved);
    ``volume_sources`` the host path Docker mounts for each volume (the checked, pinned one).
    """
    env = task_env(launch, spec, host_ports, hostname)
    binds = [f"{sandbox}:{SANDBOX_MOUNT}:rw"]
    binds += [
        f"{source}:{v.container_path}:{v.mode.lower()}"
        for source, v in zip(volume_sources, spec.volumes, strict=True)
    ]
    exposed, bindings = _ports(spec, host_ports)
    memory = launch.mem * 1024 * 1024
    host_config: JSON = {
        "Binds": binds,
        "NetworkMode": spec.network.lower(),
        "PortBindings": bindings,
        "NanoCpus": int(launch.cpus * 1e9),
        "Memory": memory,
        "MemorySwap": memory,  # the same as Memory: no swap beyond the limit
        "Privileged": spec.privileged,
    }
    config: JSON = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": dict(spec.labels),
        "ExposedPorts": exposed,
        **command_fields(launch, spec),
    }
    if (path := workdir(launch)) is not None:
        config["WorkingDir"] = path
    if spec.user is not None:
        config["User"] = spec.user
    apply_parameters(spec.parameters, config, host_config)
    if requests := device_requests(launch):
        host_config["DeviceRequests"] = requests  # set last: the scheduler's grant, not an option
    # Set last: the agent finds its containers by these, so a task's labels cannot change them.
    config["Labels"].update({TASK_ID_LABEL: launch.task_id, AGENT_ID_LABEL: agent_id})
    config["HostConfig"] = host_config
    return config


def describe_end(state: JSON, kill_reason: str | None, mem_mib: int) -> TaskExit:
    """How a stopped container ended, from the ``State`` of its inspect data."""
    code = state.get("ExitCode")
    status = shell_status(code) if isinstance(code, int) else None
    return describe_exit(status, kill_reason, mem_mib if state.get("OOMKilled") else None)


def stop_signal_name(container: JSON) -> str:
    """The signal that asks this container to stop (its image or ``stop-signal`` may change it)."""
    name = str((container.get("Config") or {}).get("StopSignal") or "SIGTERM").upper()
    if name.isdigit():
        return signal_name(int(name))
    return name if name.startswith("SIG") else "SIG" + name


def ports_of(container: JSON, count: int) -> list[int]:
    """The host ports given to a container, read back from its ``PORT<n>`` variables."""
    env = dict(item.partition("=")[::2] for item in (container.get("Config") or {}).get("Env", []))
    return [int(env[f"PORT{i}"]) for i in range(count) if env.get(f"PORT{i}", "").isdigit()]
