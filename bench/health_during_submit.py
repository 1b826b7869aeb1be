"""How long ``/health`` takes to answer while a 100,000-task array is submitted.

Run from the repository root: ``python bench/health_during_submit.py``. Starts ``corral up``
(a master and its local agent, SQLite store) as a separate process, asks ``/health`` every
20 ms from a thread while one client submits a 100,000-task array and for 5 s after (the
scheduler then plans the pending tasks), and prints the latency percentiles and the worst.
Not a pass/fail test: the machine's load moves these figures.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import CORRAL, corral_env, free_port  # noqa: E402

TASKS = 100_000
AFTER = 5.0  # seconds of probing after the submit answered


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit("corral up exited")
        time.sleep(0.1)


def main() -> None:
    """Measure and print."""
    data = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (data / "up.log").open("wb")
    args = ["up", "--port", str(port), "--data", str(data), "--cpus", "2"]
    proc = subprocess.Popen(CORRAL + args, env=corral_env(), stdout=log, stderr=log)
    try:
        _wait_up(url, proc)
        token = (data / "admin.token").read_text().strip()
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            with httpx.Client(timeout=60) as client:
                while not done.is_set():
                    start = time.monotonic()
                    client.get(f"{url}/health")
                    latencies.append(time.monotonic() - start)
                    done.wait(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        body = {"name": "big", "array": f"0-{TASKS - 1}", "task": {"shell": "true"}}
        start = time.monotonic()
        answer = httpx.post(
            f"{url}/api/v1/jobs",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )
        submitted = time.monotonic() - start
        done.wait(AFTER)
        done.set()
        prober.join()
    finally:
        proc.terminate()
        proc.wait(30)
    q = statistics.quantiles(latencies, n=100)
    print(f"submit of {TASKS} tasks: HTTP {answer.status_code} in {submitted:.1f} s")
    print(
        f"/health during it and {AFTER:.0f} s after ({len(latencies)} probes): "
        f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
        f"worst {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
