"""A real cluster on this machine for integration tests: a ``corral master`` and agents as
separate processes, each agent declaring its own resources and hostname.

Waiting is event-driven: a watcher thread follows the master's event stream and wakes waiters on
every event; each wait has a deadline and says what it waited for when it runs out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from corral.agent.cgroups import Cgroups
from corral.agent.executors.process import remove_cgroup
from corral.client import Client, ClientError
from corral.spec.accounts import Role
from corral.spec.states import TaskState
from corral.spec.views import EventView, TaskView

T = TypeVar("T")
C = TypeVar("C", bound="Cluster")
REPO = Path(__file__).resolve().parents[2]
CORRAL = [sys.executable, "-m", "corral.cli"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def leads(url: str) -> bool:
    """Whether the master at ``url`` answers and leads, its state loaded."""
    try:
        health = httpx.get(f"{url}/health", timeout=1)
    except httpx.TransportError:
        return False
    return health.status_code == 200 and health.json().get("leading") is True


def corral_env(**extra: str) -> dict[str, str]:
    """The environment for a corral process: no CORRAL_* leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class EventWatcher:
    """Follows ``/api/v1/events`` in a thread, reconnecting (with ``since``) across restarts;
    only events of ``types`` if given."""

    def __init__(self, url: str, token: str, types: Sequence[str] = ()) -> None:
        self.url, self.token, self.types = url, token, types
        self.events: list[EventView] = []
        self._cond = threading.Condition()
        self._stop = False
        self._client: Client | None = None
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        last: int | None = 0
        while not self._stop:
            try:
                self._client = Client(self.url, self.token)
                for ev in self._client.events(since=last, types=self.types):
                    with self._cond:
                        self.events.append(ev)
                        last = ev.id
                        self._cond.notify_all()
            except (ClientError, httpx.HTTPError, OSError):
                pass  # the master is down or restarting; try again
            finally:
                if self._client is not None:
                    self._client.close()
            with self._cond:
                self._cond.notify_all()
                self._cond.wait(0.1)

    def wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Re-evaluate ``check`` on every event until it answers something truthy."""
        deadline = time.monotonic() + timeout
        error: Exception | None = None  # the last the check raised, for the report
        with self._cond:
            while True:
                try:
                    result = check()
                except (ClientError, httpx.HTTPError) as e:
                    result, error = None, e  # the master may be restarting
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = "" if error is None else f" (the check last raised {error!r})"
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}{last}")
                # The cap only matters while the master is down and sends no events.
                self._cond.wait(min(remaining, 0.5))

    def wait_event(
        self, match: Callable[[EventView], bool], timeout: float, what: str
    ) -> EventView:
        """Wait until an event ``match`` accepts has been seen (since the stream began);
        answers the first. Reads only the events received: it asks the master nothing."""
        seen = 0

        def found() -> EventView | None:
            nonlocal seen  # the events are read under the condition, by wait_until
            new, seen = self.events[seen:], len(self.events)
            return next((ev for ev in new if match(ev)), None)

        return self.wait_until(found, timeout, what)

    def snapshot(self) -> list[EventView]:
        """The events seen so far, oldest first (a copy)."""
        with self._cond:
            return list(self.events)

    def close(self) -> None:
        """Stop following."""
        self._stop = True
        if self._client is not None:
            self._client.close()


@dataclass
class Proc:
    """A corral process and its log file."""

    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the process, appending to its log."""
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=corral_env(),
            start_new_session=True,
        )
        out.close()

    def signal(self, sig: int) -> None:
        """Send a signal and wait for the process to exit."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(30)

    def wait(self, timeout: float) -> None:
        """Wait for the process to exit."""
        assert self.popen is not None
        self.popen.wait(timeout)

    def send(self, sig: int) -> None:
        """Send a signal and go on (SIGSTOP, SIGCONT)."""
        assert self.popen is not None
        self.popen.send_signal(sig)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    """A master and named agents, all real processes, under ``root``."""

    root: Path
    lost_after: float = 8.0
    master_args: list[str] = field(default_factory=list)  # more options of `corral master`
    port: int = field(default_factory=free_port)
    agents: dict[str, Proc] = field(default_factory=dict)
    # Every agent of a test runs on this one host: each gets host ports of its own, as agents
    # on separate nodes would, so two tasks never race for one port.
    port_ranges: dict[str, str] = field(default_factory=dict)
    master: Proc | None = None
    listen: str = "127.0.0.1"  # the master's address (0.0.0.0: agents in other namespaces)
    token: str = ""
    agent_token: str = ""  # what the agents join with: an agent token, not the admin's
    # The events the cluster follows (all, if empty): a benchmark waiting for one run's end
    # need not have the master render, and itself read, every task's every state.
    event_types: Sequence[str] = ()
    _watcher: EventWatcher | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Client:
        """A client of this cluster's API (close it, or use it with ``with``)."""
        return Client(self.url, self.token)

    def events(self) -> list[EventView]:
        """Every event the watcher has seen, oldest first."""
        assert self._watcher is not None
        return self._watcher.snapshot()

    def start_master(self) -> None:
        """Start the master and wait until it answers."""
        (self.root / "master").mkdir(parents=True, exist_ok=True)
        if self.master is None:
            self.master = Proc(
                CORRAL
                + [
                    "master",
                    "--listen",
                    f"{self.listen}:{self.port}",
                    "--data",
                    str(self.root / "master"),
                    "--lost-after",
                    str(self.lost_after),
                    *self.master_args,
                ],
                self.root / "master.log",
            )
        self.master.start()
        deadline = time.monotonic() + 30
        while True:  # nothing to subscribe to before the server listens and leads
            try:
                if leads(self.url):
                    break
            except httpx.TransportError:
                pass
            assert self.master.running, self.master.log.read_text()
            assert time.monotonic() < deadline, (
                "master did not start:\n" + self.master.log.read_text()
            )
            time.sleep(0.05)
        self.token = (self.root / "master" / "admin.token").read_text().strip()
        if not self.agent_token:  # kept in the store: it works across restarts of the master
            with self.client() as c:
                self.agent_token = c.accounts.create_token(role=Role.AGENT, name="agents").token
        if self._watcher is None:
            self._watcher = EventWatcher(self.url, self.token, self.event_types)

    def add_agent(
        self,
        name: str,
        cpus: float = 2,
        mem: int = 2048,
        allow_volumes: Sequence[Path] = (),
        gpus: int | None = None,
        netns: str | None = None,
        master_url: str | None = None,
        **attrs: str,
    ) -> None:
        """Start an agent with declared resources and wait until it is ACTIVE. ``gpus``: GPUs
        declared by hand (``--gpus``); None: those NVML finds. ``netns``: run it in that
        network namespace (``ip netns exec``), dialling the master at ``master_url``."""
        proc = self._agent_proc(name, cpus, mem, allow_volumes, attrs, gpus)
        if master_url is not None:
            proc.args = [master_url if a == self.url else a for a in proc.args]
        if netns is not None:
            proc.args = ["ip", "netns", "exec", netns, *proc.args]
        self.agents[name] = proc
        self.start_agent(name)

    def add_agents(
        self,
        names: Sequence[str],
        cpus: float = 2,
        mem: int = 2048,
        allow_volumes: Sequence[Path] = (),
    ) -> None:
        """Start several agents at once (quicker than one by one), then wait until every one
        is ACTIVE."""
        for name in names:
            self.agents[name] = self._agent_proc(name, cpus, mem, allow_volumes, {})
            self.agents[name].start()
        for name in names:
            self._wait_active(name)

    def _agent_proc(
        self,
        name: str,
        cpus: float,
        mem: int,
        allow_volumes: Sequence[Path],
        attrs: dict[str, str],
        gpus: int | None = None,
    ) -> Proc:
        args = CORRAL + [
            "agent",
            "--master",
            self.url,
            "--token",
            self.agent_token,
            "--hostname",
            name,
            "--cpus",
            str(cpus),
            "--mem",
            str(mem),
            "--disk",
            "10000",
            "--data",
            str(self.root / "agents" / name),
            "--ports",
            self._port_range(name),
        ]
        for k, v in attrs.items():
            args += ["--attr", f"{k}={v}"]
        for path in allow_volumes:
            args += ["--allow-volume", str(path)]
        if gpus is not None:
            args += ["--gpus", str(gpus)]
        return Proc(args, self.root / f"agent-{name}.log")

    def _port_range(self, name: str) -> str:
        """The host ports of agent ``name``: a block of 200 of the 31000-32999 range each."""
        if name not in self.port_ranges:
            low = 31000 + 200 * (len(self.port_ranges) % 10)
            self.port_ranges[name] = f"{low}-{low + 199}"
        return self.port_ranges[name]

    def start_agent(self, name: str) -> None:
        """(Re)start a named agent and wait until the master sees it ACTIVE."""
        self.agents[name].start()
        self._wait_active(name)

    def _wait_active(self, name: str) -> None:
        self.wait_until(lambda: self.agent_state(name) == "ACTIVE", 30, f"agent {name} ACTIVE")

    def agent_state(self, name: str) -> str | None:
        """The state the master reports for the agent with this hostname."""
        with self.client() as c:
            for a in c.agents():
                if a.hostname == name:
                    return a.state.value if a.connected or a.state.value != "ACTIVE" else None
        return None

    def wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Wait (on events, with a deadline) until ``check`` answers something truthy."""
        assert self._watcher is not None
        return self._watcher.wait_until(check, timeout, what)

    def wait_event(
        self, match: Callable[[EventView], bool], timeout: float, what: str
    ) -> EventView:
        """Wait until the watcher has seen an event ``match`` accepts; answers the first."""
        assert self._watcher is not None
        return self._watcher.wait_event(match, timeout, what)

    def wait_run(self, job: str, run: int = 1, timeout: float = 60) -> str:
        """Wait until a run has an outcome; answers it."""

        def done() -> str | None:
            with self.client() as c:
                r = c.run(job, run)
            return r.state.value if r.state.terminal else None

        return self.wait_until(done, timeout, f"run {run} of {job} to end")

    def wait_task(self, task_id: str, state: str, timeout: float = 30) -> TaskView:
        """Wait until a task is in ``state``; answers the task."""

        def reached() -> TaskView | None:
            with self.client() as c:
                t = c.task(task_id)
            return t if t.state.value == state else None

        return self.wait_until(reached, timeout, f"task {task_id} {state}")

    def wait_count(self, job: str, state: str, n: int, run: int = 1, timeout: float = 30) -> None:
        """Wait until ``n`` tasks of a run are in ``state``."""

        def reached() -> bool:
            with self.client() as c:
                return c.run(job, run).counts.get(TaskState(state), 0) == n

        self.wait_until(reached, timeout, f"{n} tasks of {job} {state}")

    def stop(self) -> None:
        """Stop everything (agents first, so they can report)."""
        if self._watcher is not None:
            self._watcher.close()
        # Every agent at once, then wait for each: they stop side by side, not one by one.
        stopping = [proc for proc in self.agents.values() if proc.running]
        for proc in stopping:
            proc.send(signal.SIGTERM)
        for proc in stopping:
            proc.wait(30)
        if self.master is not None and self.master.running:
            self.master.signal(signal.SIGTERM)
        self._remove_cgroups_of_killed_agents()

    def _remove_cgroups_of_killed_agents(self) -> None:
        """Kill what runs in the task cgroups of agents killed with SIGKILL, and remove them,
        as a stopping agent does: nobody comes back for them once the test's data dirs are
        gone."""
        for name, proc in self.agents.items():
            id_file = self.root / "agents" / name / "agent.id"
            if proc.popen is None or proc.popen.returncode != -signal.SIGKILL:
                continue
            if not id_file.exists():
                continue
            cgroups = Cgroups.detect(f"corral-{id_file.read_text().strip()}")
            for cgroup in cgroups.found():
                asyncio.run(remove_cgroup(cgroup))
            cgroups.release()

    def dump_stacks(self) -> None:
        """Have the master and every agent print their threads' stacks into their logs
        (``kill -USR1``; faulthandler writes them from the signal handler, before any stop)."""
        for proc in [self.master, *self.agents.values()]:
            if proc is not None and proc.running:
                proc.send(signal.SIGUSR1)

    def tasks_table(self) -> str:
        """Every task the master knows: state, agent and why it waits, one line each."""
        try:
            with self.client() as c:
                tasks = c.tasks(limit=200)
        except (ClientError, httpx.HTTPError) as e:
            return f"--- tasks: the master did not answer ({e})"
        lines = [f"{t.id} {t.state.value} {t.hostname or '-'} {t.waiting or ''}" for t in tasks]
        if tasks.next is not None:
            lines.append("(more)")
        return "\n".join(["--- tasks", *lines])

    def logs(self) -> str:
        """Every process log, for a failing test's report."""
        parts = [self.root / "master.log", *(p.log for p in self.agents.values())]
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in parts if p.exists())


def shell_wait_for(path: Path) -> str:
    """A shell loop that blocks a task until the test creates ``path`` (so no test sleeps)."""
    return f"while [ ! -e {path} ]; do sleep 0.05; done"


def wait_for_file(path: Path, timeout: float, contains: str = "") -> str:
    """Wait until a file exists (and holds ``contains``), for when no master is up to tell."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and contains in (text := path.read_text()):
            return text
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {path} to hold {contains!r}")


@contextmanager
def running_cluster(c: C, request: pytest.FixtureRequest) -> Iterator[C]:
    """Start ``c``'s master, stop everything afterwards; logs are printed when a test fails."""
    c.start_master()
    try:
        yield c
    finally:
        rep = getattr(request.node, "rep_call", None)
        failed = rep is not None and rep.failed
        if failed:
            # What each process was doing when the test gave up, before it is stopped.
            print(c.tasks_table())
            c.dump_stacks()
        c.stop()
        if failed:
            print(c.logs())
