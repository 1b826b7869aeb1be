"""The reference workload: a 96-container simulation sweep with read-only inputs and read-write
outputs on shared host directories, on a cluster of three agents."""

import tarfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from corral.client import ApiError
from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from tests.support.cluster import Cluster
from tests.support.images import ensure_test_image

AGENT_CPUS, AGENT_MEM = 2.0, 2048
TASK_CPUS, TASK_MEM = 0.5, 512


def sweep_spec(name: str, inputs: Path, outputs: Path, image: str, shell: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": name,
            "array": "0-95",
            "task": {
                "shell": shell,
                "cpus": TASK_CPUS,
                "mem": TASK_MEM,
                "docker": {
                    "image": image,
                    "volumes": [
                        {"containerPath": "/in", "hostPath": str(inputs), "mode": "RO"},
                        {"containerPath": "/out", "hostPath": str(outputs), "mode": "RW"},
                    ],
                },
            },
        }
    )


def peak_use(tasks: list[TaskView]) -> dict[str, tuple[float, int]]:
    """Per agent, the most cpus and mem its tasks held at once, from their recorded histories:
    a task holds its resources from STAGING (placement) to its terminal state."""
    changes: dict[str, list[tuple[float, int, float, int]]] = defaultdict(list)
    for t in tasks:
        history = t.events or []
        staged = next(e for e in history if e.state.value == "STAGING")
        ended = next(e for e in history if e.state.terminal)
        agent = staged.agent_id or ""
        # Releases sort before placements at the same instant: the slot was free again.
        changes[agent].append((staged.time.timestamp(), 1, TASK_CPUS, TASK_MEM))
        changes[agent].append((ended.time.timestamp(), 0, -TASK_CPUS, -TASK_MEM))
    peaks = {}
    for agent, events in changes.items():
        cpus, mem, peak_cpus, peak_mem = 0.0, 0, 0.0, 0
        for _, _, dc, dm in sorted(events):
            cpus, mem = cpus + dc, mem + dm
            peak_cpus, peak_mem = max(peak_cpus, cpus), max(peak_mem, mem)
        peaks[agent] = (peak_cpus, peak_mem)
    return peaks


def test_a_96_container_sweep_runs_to_completion_without_overcommitting_any_agent(
    cluster: Cluster, tmp_path: Path
) -> None:
    image = ensure_test_image()
    inputs, outputs = tmp_path / "macros", tmp_path / "results"
    inputs.mkdir()
    outputs.mkdir()
    for i in range(96):
        (inputs / f"sim_{i}.mac").write_text(f"/run/beamOn {1000 + i}\n")
    for name in ("a1", "a2", "a3"):
        cluster.add_agent(name, cpus=AGENT_CPUS, mem=AGENT_MEM, allow_volumes=[tmp_path])
    shell = "cd /in && tar czf /out/sim_{index}.mac.tgz sim_{index}.mac"
    with cluster.client() as c:
        c.create_job(sweep_spec("geant4", inputs, outputs, image, shell))
        assert cluster.wait_run("geant4", timeout=300) == "SUCCEEDED"
        tasks = [c.task(t.id) for t in c.tasks(job="geant4")]
    assert len(tasks) == 96 and {t.state.value for t in tasks} == {"FINISHED"}
    for i in range(96):
        with tarfile.open(outputs / f"sim_{i}.mac.tgz") as archive:
            member = archive.extractfile(f"sim_{i}.mac")
            assert member is not None and member.read() == f"/run/beamOn {1000 + i}\n".encode()
    peaks = peak_use(tasks)
    assert len(peaks) == 3, "the sweep should use every agent"
    for agent, (cpus, mem) in peaks.items():
        assert cpus <= AGENT_CPUS and mem <= AGENT_MEM, (agent, cpus, mem)


def test_writing_into_a_read_only_mount_fails_the_task(cluster: Cluster, tmp_path: Path) -> None:
    image = ensure_test_image()
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    cluster.add_agent("a1", allow_volumes=[tmp_path])
    spec = sweep_spec("tamper", inputs, outputs, image, "touch /in/forged").model_copy(
        update={"array": None}
    )
    with cluster.client() as c:
        c.create_job(spec)
        assert cluster.wait_run("tamper") == "FAILED"
        task = c.task("tamper.1.0.0")
        assert task.exit_code not in (None, 0)
        assert "Read-only file system" in c.logs(task.id, "stderr").data
    assert not (inputs / "forged").exists()


def test_a_volume_no_agent_allows_is_refused_naming_the_field(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1", allow_volumes=[tmp_path / "data"])
    spec = sweep_spec("escape", Path("/etc"), tmp_path / "data", "corral-test/busybox", "true")
    with cluster.client() as c:
        with pytest.raises(ApiError) as refused:
            c.create_job(spec)
        assert refused.value.status == 422
        assert "task.docker.volumes.0.host_path" in refused.value.message
        assert "/etc" in refused.value.message
        assert c.jobs() == []


def test_a_container_port_gets_a_host_port_that_is_reported_and_answers(
    cluster: Cluster,
) -> None:
    image = ensure_test_image()
    cluster.add_agent("a1")
    serve = "echo hello > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"
    spec = JobSpec.model_validate(
        {
            "name": "web",
            "task": {
                "shell": serve,
                "cpus": 0.1,
                "mem": 64,
                "docker": {"image": image, "portMappings": [{"containerPort": 8080}]},
                # httpd, the container's PID 1, ignores SIGTERM: the kill that ends the test
                # needs not wait out the default 10 s grace for the SIGKILL.
                "kill_grace": 1,
            },
        }
    )
    with cluster.client() as c:
        c.create_job(spec)
        task = cluster.wait_task("web.1.0.0", "RUNNING")
        [port] = task.ports
        assert 31000 <= port <= 32000
        deadline = time.monotonic() + 30
        while True:  # httpd needs a moment to listen; nothing signals it but the socket
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the container's port never answered"
                time.sleep(0.1)
        assert answer.text == "hello\n"
        c.kill_job("web")
        assert cluster.wait_run("web") == "KILLED"
