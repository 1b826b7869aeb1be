"""Host ports an agent hands to its tasks: a round-robin pool over a range, checked by binding.

One pool serves every executor of an agent, so a process task and a container never get the
same port. A port asked as 0 is any free port of the range; any other is that exact host port,
refused if a task of this agent holds it or something else on the host listens on it.
"""

from __future__ import annotations

import errno
import socket as sockets
from collections.abc import Sequence

from corral.agent.executors.base import LaunchError
from corral.spec.docker import PortMapping
from corral.spec.protocol import HostPort

DEFAULT_RANGE = (31000, 32000)


def _bind_error(port: int, protocol: str) -> OSError | None:
    """Why ``port`` cannot be bound on all addresses now, or None if it can."""
    kind = sockets.SOCK_DGRAM if protocol == "udp" else sockets.SOCK_STREAM
    with sockets.socket(sockets.AF_INET, kind) as probe:
        if kind == sockets.SOCK_STREAM:
            # A TCP port whose last connection lingers in TIME_WAIT is free for a server (they
            # set SO_REUSEADDR); only a listener makes the bind fail then.
            probe.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as exc:
            return exc
    return None


def from_mappings(mappings: Sequence[PortMapping]) -> list[HostPort]:
    """The host ports of a container's port mappings, as the pool takes them."""
    return [HostPort(port=m.host_port, name=m.name, protocol=m.protocol) for m in mappings]


def port_env(wanted: Sequence[HostPort], ports: Sequence[int]) -> dict[str, str]:
    """``PORT0..n``, ``PORT_<NAME>``, ``PORT`` (the first) and ``PORTS`` (all, comma separated).

    ``ports`` holds the host port given for each of ``wanted``, in order.
    """
    env: dict[str, str] = {}
    for i, (asked, port) in enumerate(zip(wanted, ports, strict=True)):
        env[f"PORT{i}"] = str(port)
        if asked.name is not None:
            env[f"PORT_{asked.name.upper().replace('-', '_')}"] = str(port)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(map(str, ports))
    return env


class PortPool:
    """Host ports held by an agent's tasks; a port asked as 0 gets a free one of the range."""

    def __init__(self, first: int, last: int) -> None:
        """Hand out ports from ``first`` to ``last``, both included."""
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"port range {first}-{last} is not within 1-65535")
        self.first, self.last = first, last
        self._cursor = first  # goes round, so a port just given back is not reused at once
        self._held: dict[str, list[int]] = {}

    def reserve(self, task_id: str, wanted: Sequence[HostPort]) -> list[int]:
        """The host port of each of ``wanted``, held for ``task_id`` until ``release``.

        Raises ``LaunchError`` if a fixed port is taken or the range has no free port left;
        then nothing is held.
        """
        owners = {
            port: owner
            for owner, ports in self._held.items()
            if owner != task_id  # its own, from an earlier try, are given back now
            for port in ports
        }
        taken: set[int] = set(owners)
        # Fixed ports first, so that a free port picked for a 0 cannot be one asked for exactly.
        for asked in wanted:
            if asked.port:
                if asked.port in taken and asked.port not in owners:
                    raise LaunchError(f"host port {asked.port} is asked for twice")
                self._check_fixed(asked, owners)
                taken.add(asked.port)
        ports: list[int] = []
        for asked in wanted:
            port = asked.port or self._free(taken, asked.protocol)
            taken.add(port)
            ports.append(port)
        self._held[task_id] = ports
        return ports

    def held(self, task_id: str) -> list[int]:
        """The host ports ``task_id`` holds, in the order it asked for them."""
        return list(self._held.get(task_id, ()))

    def adopt(self, task_id: str, ports: Sequence[int]) -> None:
        """Hold the ports of a task found running after a restart."""
        self._held[task_id] = list(ports)

    def release(self, task_id: str) -> None:
        """Give back the ports of ``task_id`` (no-op if it held none)."""
        self._held.pop(task_id, None)

    @staticmethod
    def _check_fixed(asked: HostPort, owners: dict[int, str]) -> None:
        port = asked.port
        if not 1 <= port <= 65535:
            raise LaunchError(f"host port {port} is not within 1-65535")
        owner = owners.get(port)
        if owner is not None:
            raise LaunchError(f"host port {port} is in use (by task {owner})")
        error = _bind_error(port, asked.protocol)
        # Only "in use" is a verdict: a port below 1024 the agent may not bind (EACCES) can
        # still be fine for a task or for dockerd, which run with other privileges.
        if error is not None and error.errno == errno.EADDRINUSE:
            raise LaunchError(f"host port {port} is in use")

    def _free(self, taken: set[int], protocol: str) -> int:
        size = self.last - self.first + 1
        for _ in range(size):
            port = self._cursor
            self._cursor = self.first + (port - self.first + 1) % size
            # A port can be in use by something else on the host: only a bind tells.
            if port not in taken and _bind_error(port, protocol) is None:
                return port
        raise LaunchError(f"no free host port in {self.first}-{self.last}")
