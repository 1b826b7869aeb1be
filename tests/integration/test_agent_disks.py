"""An agent's data directory: one agent per directory, and a full disk that fails launches with
the reason instead of stranding them, until space is freed."""

import subprocess
from pathlib import Path

from corral.spec.jobs import JobSpec
from tests.support.cluster import CORRAL, Cluster, corral_env
from tests.support.disks import fill, small_disk


def test_a_second_agent_on_the_same_data_dir_refuses_to_start(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    data = cluster.root / "agents" / "a1"
    second = subprocess.run(
        [*CORRAL, "agent", "--master", cluster.url, "--token", cluster.token, "--data", str(data)],
        env=corral_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already uses the data directory" in second.stderr
    with cluster.client() as c:
        (agent,) = c.agents()
        assert agent.hostname == "a1" and agent.connected


def test_a_full_agent_disk_fails_launches_with_the_reason_and_they_run_once_freed(
    cluster: Cluster, tmp_path: Path
) -> None:
    with small_disk(cluster.root / "agents" / "a1", 4096) as disk:
        cluster.add_agent("a1")
        filler = fill(disk)
        with cluster.client() as c:
            c.create_job(JobSpec.model_validate({"name": "full", "task": {"shell": "echo hi"}}))
            assert cluster.wait_run("full") == "FAILED"
            task = c.task("full.1.0.0")
            assert task.state.value == "FAILED" and "No space left on device" in task.reason
            assert str(disk) not in task.reason  # no path of the agent's disk

            filler.unlink()
            c.create_job(JobSpec.model_validate({"name": "freed", "task": {"shell": "echo ok"}}))
            assert cluster.wait_run("freed") == "SUCCEEDED"
            assert c.logs("freed.1.0.0").content() == b"ok\n"
            (agent,) = c.agents()
            assert agent.connected and agent.state.value == "ACTIVE"
