"""Host ports an agent hands to its tasks: a round-robin pool over a range, checked by binding."""

from __future__ import annotations

import socket as sockets
from collections.abc import Sequence

from corral.agent.executors.base import LaunchError
from corral.spec.docker import PortMapping


def _bindable(port: int, protocol: str) -> bool:
    kind = sockets.SOCK_DGRAM if protocol == "udp" else sockets.SOCK_STREAM
    with sockets.socket(sockets.AF_INET, kind) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


class PortPool:
    """Host ports held by this executor's tasks; a port asked as 0 gets a free one of the range."""

    def __init__(self, first: int, last: int) -> None:
        """Hand out ports from ``first`` to ``last``, both included."""
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"port range {first}-{last} is not within 1-65535")
        self.first, self.last = first, last
        self._cursor = first  # goes round, so a port just given back is not reused at once
        self._held: dict[str, list[int]] = {}

    def reserve(self, task_id: str, mappings: Sequence[PortMapping]) -> list[int]:
        """The host port of each mapping, held for ``task_id`` until ``release``."""
        taken = {port for ports in self._held.values() for port in ports}
        ports: list[int] = []
        for mapping in mappings:
            port = mapping.host_port or self._free(taken, mapping.protocol)
            taken.add(port)
            ports.append(port)
        self._held[task_id] = ports
        return ports

    def held(self, task_id: str) -> list[int]:
        """The host ports ``task_id`` holds, in the order of its port mappings."""
        return list(self._held.get(task_id, ()))

    def adopt(self, task_id: str, ports: Sequence[int]) -> None:
        """Hold the ports of a task found running after a restart."""
        self._held[task_id] = list(ports)

    def release(self, task_id: str) -> None:
        """Give back the ports of ``task_id`` (no-op if it held none)."""
        self._held.pop(task_id, None)

    def _free(self, taken: set[int], protocol: str) -> int:
        size = self.last - self.first + 1
        for _ in range(size):
            port = self._cursor
            self._cursor = self.first + (port - self.first + 1) % size
            # A port can be in use by something else on the host: only a bind tells.
            if port not in taken and _bindable(port, protocol):
                return port
        raise LaunchError(f"no free host port in {self.first}-{self.last}")
