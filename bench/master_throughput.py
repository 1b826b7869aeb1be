"""The master's own cost per task, with agents that cost nothing.

Run from the repository root: ``python bench/master_throughput.py``.

A real ``corral master`` (SQLite store) and two simulated agents in this process that speak the
agent channel's protocol and start nothing: each launch is answered at once with STARTING,
RUNNING and FINISHED, sent as a real agent sends them (one message of updates in flight, the
updates made meanwhile together after its ack). 3,000 tasks run as one array, the run's end seen
on the event stream. The master is then the only thing working, so its CPU per task is read
with little of the noise of a shared machine (``bench/throughput.py`` measures the whole
cluster with real agents and processes). Prints tasks/s and the master's CPU per task, three
runs. Not a pass/fail test. ``BENCH_PROFILE=DIR`` and ``BENCH_TASKS=N`` as in ``throughput.py``
(a profile of the master per run).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import profiled  # noqa: E402  (bench/ is this script's first path)

from corral.spec.jobs import JobSpec  # noqa: E402
from corral.spec.protocol import AgentResources, Heartbeat, Hello  # noqa: E402
from corral.spec.states import RunState  # noqa: E402
from corral.spec.views import EventView  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", "3000"))
RUNS = 3
HOW_LONG = 600  # seconds a run may take at most


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has spent."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class InstantAgent:
    """An agent whose tasks end as soon as they are launched."""

    def __init__(self, name: str, url: str, token: str) -> None:
        self.name, self.url, self.token = name, url, token
        self.seq = 0
        self.pending: list[dict[str, Any]] = []  # updates not sent yet
        self.in_flight = False  # a message of updates waits for its ack
        self.registered = threading.Event()
        self.ws: ClientConnection | None = None

    async def run(self) -> None:
        url = self.url.replace("http", "ws", 1) + "/api/v1/agent/channel"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with connect(url, additional_headers=headers, max_size=2**24) as ws:
            self.ws = ws
            hello = Hello(
                agent_id=self.name,
                hostname=self.name,
                resources=AgentResources(cpus=2, mem=4096, disk=10_000),
                batched_launches=True,
            )
            await ws.send(hello.model_dump_json())
            beats = asyncio.create_task(self._heartbeats(ws))
            try:
                async for raw in ws:
                    await self._handle(ws, json.loads(raw))
            finally:
                beats.cancel()

    async def _heartbeats(self, ws: ClientConnection) -> None:
        beat = Heartbeat().model_dump_json()
        while True:
            await asyncio.sleep(0.5)
            await ws.send(beat)

    async def _handle(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "welcome":
            self.registered.set()
        elif kind in ("launch", "launches"):
            for task in msg["tasks"] if kind == "launches" else [msg["task"]]:
                for state in ("STARTING", "RUNNING", "FINISHED"):
                    self.seq += 1
                    update = {"seq": self.seq, "task_id": task["task_id"], "state": state}
                    update["time"] = time.time()
                    if state == "FINISHED":
                        update["exit_code"] = 0
                    self.pending.append(update)
            await self._flush(ws)
        elif kind == "ack":
            self.in_flight = False
            await self._flush(ws)

    async def _flush(self, ws: ClientConnection) -> None:
        if self.in_flight or not self.pending:
            return
        updates, self.pending = self.pending, []
        self.in_flight = True
        await ws.send(json.dumps({"type": "updates", "updates": updates}))


def run_array(cluster: Cluster, name: str) -> float:
    """Seconds from submitting an array of ``TASKS`` to its run's success."""
    spec = JobSpec.model_validate(
        {
            "name": name,
            "array": f"0-{TASKS - 1}",
            "task": {"command": ["true"], "cpus": 0.1, "mem": 16},
        }
    )

    def ended(ev: EventView) -> bool:
        return ev.type == "run_state" and ev.job == name and RunState(ev.state or "").terminal

    with cluster.client() as c:
        start = time.perf_counter()
        c.create_job(spec)
        seen = cluster.wait_event(ended, HOW_LONG, f"the run of {name} to end")
        elapsed = time.perf_counter() - start
    assert seen.state == "SUCCEEDED", seen
    return elapsed


async def serve(agents: list[InstantAgent]) -> None:
    """Run the agents until cancelled."""
    await asyncio.gather(*(a.run() for a in agents))


async def hang_up(agents: list[InstantAgent]) -> None:
    """Close the agents' connections: their ``run`` returns."""
    for a in agents:
        if a.ws is not None:
            await a.ws.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_master()
        agents = [InstantAgent(n, cluster.url, cluster.agent_token) for n in ("sim-1", "sim-2")]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        serving = asyncio.run_coroutine_threadsafe(serve(agents), loop)
        try:
            for a in agents:
                assert a.registered.wait(30), f"{a.name} was not welcomed"
            assert cluster.master is not None and cluster.master.popen is not None
            pid = cluster.master.popen.pid
            for n in range(RUNS):
                before = cpu_of(pid)
                with profiled({f"master-{n}": pid}):
                    elapsed = run_array(cluster, f"instant-{n}")
                spent = cpu_of(pid) - before
                print(
                    f"master alone: {TASKS} tasks in {elapsed:.2f}s = {TASKS / elapsed:.0f} "
                    f"tasks/s, its CPU per task {spent / TASKS * 1000:.3f} ms"
                )
        finally:
            # The agents hang up first: the master is not left talking.
            asyncio.run_coroutine_threadsafe(hang_up(agents), loop).result(10)
            serving.result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            cluster.stop()


if __name__ == "__main__":
    main()
