"""List calls, submission and the master's memory as the store grows to 100,000 tasks.

Run from the repository root: ``python bench/scale.py`` (``--scale 0.1`` for a quick look at a
tenth of the sizes; ``--db URL`` for another store than the default SQLite file). Starts a
master and one agent as separate processes, then grows the cluster in three steps:

1. a service of 1,000 instances (``sleep``), waited for until all of them run;
2. an array of 10,000 tasks that cannot be placed (each asks for more cpus than are left);
3. an array of 100,000 such tasks.

After each step it prints how long the submission took, the p50 and p99 of 30 calls of each
list (the native API's jobs and task pages, Marathon's apps and tasks, Chronos' jobs, the
dashboard's pages) and the master's resident memory. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import CORRAL, Proc, free_port  # noqa: E402

CALLS = 30
SERVICE = "/scale-web"
AGENT_CPUS = 12  # the service holds 10 of them: 2 are left, and no waiting task fits in 2
WAITING_TASK = {"command": ["true"], "cpus": 3, "mem": 16}


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    """A process's resident memory in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    """A master and an agent under ``root``, and an HTTP client of the master."""

    def __init__(self, root: Path, db: str | None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = CORRAL + ["master", "--listen", f"127.0.0.1:{self.port}"]
        args += ["--data", str(root / "master")]
        if db:
            args += ["--db", db]
        self.master = Proc(args, root / "master.log")
        self.agent: Proc | None = None
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def start(self) -> None:
        """Start the master, then the agent, and wait until the agent is ACTIVE."""
        self.master.start()
        self._wait(lambda: self._health(), 60, "the master to answer")
        token = (self.root / "master" / "admin.token").read_text().strip()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.cookies.set("corral_token", token)
        args = CORRAL + ["agent", "--master", self.url, "--token", token, "--hostname", "scale"]
        args += ["--cpus", str(AGENT_CPUS), "--mem", "16384", "--disk", "100000"]
        args += ["--data", str(self.root / "agent")]
        self.agent = Proc(args, self.root / "agent.log")
        self.agent.start()
        self._wait(self._agent_active, 60, "the agent to be ACTIVE")

    def _health(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def _agent_active(self) -> bool:
        agents = self.http.get("/api/v1/agents").json()
        return any(a["state"] == "ACTIVE" and a["connected"] for a in agents)

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        # A benchmark polls: following the event stream would cost the master more than the
        # reads it measures (every one of the 111,000 tasks has events).
        deadline = time.monotonic() + timeout
        while not check():
            assert self.master.running, self.master.log.read_text()[-3000:]
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the agent, then the master."""
        self.http.close()
        for proc in (self.agent, self.master):
            if proc is not None and proc.running:
                proc.signal(signal.SIGTERM)

    def rss(self) -> float:
        """The master's resident memory in MiB."""
        assert self.master.popen is not None
        return rss_mib(self.master.popen.pid)

    # --- steps

    def service(self, instances: int) -> float:
        """Deploy the service and wait until every instance runs; answers the seconds."""
        doc = {
            "id": SERVICE,
            "instances": instances,
            "task": {"command": ["sleep", "3600"], "cpus": 0.01, "mem": 1},
        }
        start = time.perf_counter()
        self.http.post("/api/v1/services", json=doc).raise_for_status()

        def all_running() -> bool:
            app = self.http.get(f"/v2/apps{SERVICE}").json()["app"]
            return bool(app["tasksRunning"] == instances)

        self._wait(all_running, 900, f"{instances} instances running")
        return time.perf_counter() - start

    def array(self, name: str, size: int) -> float:
        """Submit an array of ``size`` tasks that wait; answers the seconds the submit took."""
        doc = {"name": name, "array": f"0-{size - 1}", "task": WAITING_TASK}
        start = time.perf_counter()
        self.http.post("/api/v1/jobs", json=doc).raise_for_status()
        return time.perf_counter() - start

    # --- list calls

    def calls(self, job: str | None) -> dict[str, str]:
        """The list calls to time: a label and its path (the job's middle page found once)."""
        found = {"GET /api/v1/jobs": "/api/v1/jobs"}
        if job is not None:
            found["tasks of a job, first 100"] = f"/api/v1/tasks?job={job}&limit=100"
            deep = self._deep_page(job)
            if deep is not None:
                found["tasks of a job, a middle page of 100"] = deep
        found |= {
            "PENDING tasks, first 100": "/api/v1/tasks?state=PENDING&limit=100",
            "GET /v2/apps": "/v2/apps",
            "GET /v2/apps?embed=apps.tasks": "/v2/apps?embed=apps.tasks",
            "GET /v2/tasks": "/v2/tasks",
            "GET /scheduler/jobs": "/scheduler/jobs",
            "dashboard /": "/",
            "dashboard /ui/jobs": "/ui/jobs?who=all",
            "dashboard /ui/services": "/ui/services?who=all",
            f"dashboard /ui/services{SERVICE}": f"/ui/services{SERVICE}",
            "dashboard /ui/agents": "/ui/agents",
            "GET /api/v1/usage (the last day)": "/api/v1/usage",
            "dashboard /ui/usage": "/ui/usage",
        }
        if job is not None:
            found[f"dashboard /ui/jobs/{job}"] = f"/ui/jobs/{job}"
        return found

    def _deep_page(self, job: str) -> str | None:
        """The path of the page of 100 half way through the job's tasks, found by following
        the task list's ``next`` links (None: the list has no cursor)."""
        path: str | None = f"/api/v1/tasks?job={job}&limit=100"
        pages = 0
        total = int(self.http.get(f"/api/v1/jobs/{job}").json()["last_run"]["total"])
        while path is not None and pages < total // 200:
            answer = self.http.get(path)
            link = answer.links.get("next")
            if link is None:
                return None
            path = str(httpx.URL(link["url"]).raw_path, "ascii")
            pages += 1
        return path

    def time_calls(self, job: str | None) -> list[tuple[str, float, float, int]]:
        """Each list call ``CALLS`` times: label, p50 and p99 in ms, and the answer's size."""
        rows = []
        for label, path in self.calls(job).items():
            samples, size = [], 0
            for _ in range(CALLS):
                start = time.perf_counter()
                answer = self.http.get(path)
                samples.append((time.perf_counter() - start) * 1000)
                answer.raise_for_status()
                size = len(answer.content)
            rows.append((label, percentile(samples, 50), percentile(samples, 99), size))
        return rows


def report(step: str, bench: Bench, job: str | None, extra: str) -> None:
    """Print the list calls' figures and the master's memory after a step."""
    print(f"\n== {step}: {extra}; master RSS {bench.rss():.0f} MiB", flush=True)
    print(f"{'call':46} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>10}")
    for label, p50, p99, size in bench.time_calls(job):
        print(f"{label:46} {p50:8.1f} {p99:8.1f} {size:10d}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="a fraction of the sizes")
    parser.add_argument("--db", help="the master's store URL (default: SQLite in a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and print it")
    args = parser.parse_args(argv)
    instances = max(1, round(1_000 * args.scale))
    small, large = max(1, round(10_000 * args.scale)), max(1, round(100_000 * args.scale))
    root = Path(tempfile.mkdtemp(prefix="corral-scale-"))
    bench = Bench(root, args.db)
    try:
        bench.start()
        print(f"master RSS at start: {bench.rss():.0f} MiB (pid {os.getpid()} drives it)")
        took = bench.service(instances)
        report(f"{instances}-instance service", bench, None, f"all running after {took:.1f}s")
        took = bench.array("wait-small", small)
        report(f"+ {small:,}-task array", bench, "wait-small", f"submitted in {took:.2f}s")
        took = bench.array("wait-large", large)
        report(f"+ {large:,}-task array", bench, "wait-large", f"submitted in {took:.2f}s")
    finally:
        bench.stop()
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
