"""The physicists' shell script: a bash loop with curl posts 96 Docker jobs built from one Chronos
JSON template, 0.1 s apart (run once from a start computed once, 5 s in the past; 0.5 CPU and
512 MB as strings, a read-only input and a read-write output volume, shell: true); all 96 run
exactly once and write their outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.images import ensure_test_image

pytestmark = pytest.mark.integration

JOBS = 96
SCRIPT = r"""
set -eu
_TIME_=$(date -u -d '5 seconds ago' +%Y-%m-%dT%H:%M:%SZ)
for i in $(seq 1 "$JOBS"); do
    sed -e "s/__NAME__/sim-$i/g" -e "s/_TIME_/$_TIME_/g" "$TEMPLATE" \
        | curl -sS -o /dev/null -w '%{http_code}\n' -u "physics:$TOKEN" \
            -H 'Content-Type: application/json' -X POST --data-binary @- \
            "$URL/scheduler/iso8601"
    sleep 0.1
done
"""


def template(image: str, inputs: Path, outputs: Path) -> dict[str, object]:
    """The one job every line of the loop posts, with __NAME__ and _TIME_ replaced."""
    return {
        "name": "__NAME__",
        "schedule": "R1/_TIME_/PT10M",
        "owner": "physics@example.org",
        "cpus": "0.5",
        "mem": "512",
        "shell": True,
        # Reads the macro, records whether the input volume is writable, names the output;
        # appends, so that a second run of a job would show twice.
        "command": "cat /in/run.mac >> /out/__NAME__.out && "
        "(touch /in/probe 2>/dev/null && echo in-rw || echo in-ro) >> /out/__NAME__.out",
        "container": {
            "type": "DOCKER",
            "image": image,
            "network": "BRIDGE",
            "volumes": [
                {"containerPath": "/in", "hostPath": str(inputs), "mode": "RO"},
                {"containerPath": "/out", "hostPath": str(outputs), "mode": "RW"},
            ],
        },
    }


def succeeded(cluster: Cluster) -> int:
    with cluster.client() as c:
        views = c.jobs()
    return sum(1 for v in views if v.last_run is not None and v.last_run.state.value == "SUCCEEDED")


def test_a_curl_loop_posting_96_docker_jobs_started_5_s_ago_runs_each_exactly_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "curl is needed: users' scripts post with it"
    image = ensure_test_image()
    inputs, outputs = tmp_path / "macros", tmp_path / "results"
    inputs.mkdir()
    outputs.mkdir()
    (inputs / "run.mac").write_text("/run/beamOn 1000\n")
    for name in ("a1", "a2"):
        cluster.add_agent(name, cpus=4, mem=4096, allow_volumes=[tmp_path])
    path = tmp_path / "job.json"
    path.write_text(json.dumps(template(image, inputs, outputs)))

    env = {
        "PATH": os.environ["PATH"],
        "JOBS": str(JOBS),
        "TEMPLATE": str(path),
        "TOKEN": cluster.token,
        "URL": cluster.url,
    }
    done = subprocess.run(
        ["bash", "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["204"] * JOBS

    cluster.wait_until(lambda: succeeded(cluster) == JOBS, 900, f"{JOBS} jobs to succeed")
    with cluster.client() as c:
        views = c.jobs()
    assert sorted(v.runs for v in views) == [1] * JOBS
    # Each R1 schedule is over (none can run again) and none skipped its firing.
    assert [v.name for v in views if v.next_run is not None or v.remaining != 0] == []
    assert [e for e in cluster.events() if e.type == "run_skipped"] == []
    for i in range(1, JOBS + 1):
        assert (outputs / f"sim-{i}.out").read_text() == "/run/beamOn 1000\nin-ro\n"
    assert not (inputs / "probe").exists()
