"""Several masters on one PostgreSQL database, each a real ``corral master`` process with its own
address, and agents given every master's URL: the cluster of docs/ha.md, on this machine."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

import httpx

from corral.spec.accounts import Role
from tests.support.cluster import CORRAL, Cluster, EventWatcher, Proc, free_port, leads


@dataclass
class HaCluster(Cluster):
    """``masters`` masters on the database at ``db``; ``url`` names them all (commas), so the
    clients and agents of ``Cluster`` find the leader as users' do."""

    db: str = ""
    masters: int = 3
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ",".join(self.url_of(name) for name in self.procs)

    def url_of(self, name: str) -> str:
        """Where master ``name`` answers."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_master(self) -> None:
        """Start every master, wait until one leads, then follow the events as ``Cluster``."""
        (self.root / "master").mkdir(parents=True, exist_ok=True)
        for i in range(1, self.masters + 1):
            name = f"m{i}"
            self.ports[name] = free_port()
            self.procs[name] = Proc(
                [
                    *CORRAL,
                    "master",
                    "--db",
                    self.db,
                    "--listen",
                    f"127.0.0.1:{self.ports[name]}",
                    "--data",
                    str(self.root / "master"),  # one admin token for all: kept in the store
                    "--lost-after",
                    str(self.lost_after),
                ],
                self.root / f"master-{name}.log",
            )
            self.procs[name].start()
            if i == 1:  # the first writes the admin token the others then read
                self.wait_for_leader(30)
        self.master = None
        self.leader_name = self.wait_for_leader(30)
        for name in self.procs:
            self.wait_answers(name)
        self.token = (self.root / "master" / "admin.token").read_text().strip()
        with self.client() as c:
            self.agent_token = c.accounts.create_token(role=Role.AGENT, name="agents").token
        self._watcher = EventWatcher(self.url, self.token)

    def wait_answers(self, name: str) -> None:
        """Wait until master ``name`` answers (leading or not)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url_of(name)}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.procs[name].running, self.procs[name].log.read_text()
            assert time.monotonic() < deadline, f"master {name} did not start"
            time.sleep(0.05)

    def leader(self) -> str | None:
        """The master that leads now, by its own word."""
        for name, proc in self.procs.items():
            if proc.running and leads(self.url_of(name)):
                return name
        return None

    def wait_for_leader(self, timeout: float, other_than: str | None = None) -> str:
        """Wait (polling the masters' /health: no event stream lives through a change of
        leader) until a master other than ``other_than`` leads; answers its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            name = self.leader()
            if name is not None and name != other_than:
                return name
            time.sleep(0.02)
        raise AssertionError(f"no master took the lead within {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        """Stop the agents, then the masters."""
        super().stop()
        for proc in self.procs.values():
            if proc.running:
                proc.signal(signal.SIGTERM)

    def logs(self) -> str:
        """Every process log."""
        parts = [*(p.log for p in self.procs.values()), *(p.log for p in self.agents.values())]
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in parts if p.exists())


def master_log(cluster: HaCluster, name: str) -> str:
    """What master ``name`` logged."""
    return cluster.procs[name].log.read_text()
