"""Gang jobs in containers: mpirun's remote shell, called in rank 0's container, runs its command
in the container of the gang's rank on another agent (Docker exec); ``corral exec`` into a
container."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.spec.jobs import JobSpec
from tests.integration.test_gangs import corral_exec
from tests.support.cluster import Cluster
from tests.support.images import ensure_test_image

pytestmark = pytest.mark.integration

# What mpirun does through plm_rsh_agent, in words a busybox shell has: run a command in the
# gang's task on the other node (node rank 1, rank 1), and wait for it; then rank 0 is done.
RSH = (
    "set -- $(echo $CORRAL_HOSTS | tr , ' '); echo here $(hostname); "
    "$OMPI_MCA_plm_rsh_agent $2 'echo rank $CORRAL_RANK of $CORRAL_GANG_SIZE on $(hostname)'; "
    "echo status $?"
)


def test_the_remote_shell_runs_in_the_container_of_the_rank_on_that_host(
    cluster: Cluster,
) -> None:
    image = ensure_test_image()
    c = cluster
    c.add_agents(["node-a", "node-b"], cpus=1)
    spec = {
        "name": "boxes",
        "nodes": 2,
        "task": {"shell": RSH, "cpus": 0.5, "mem": 64, "docker": {"image": image}},
    }
    with c.client() as client:
        client.create_job(JobSpec.model_validate(spec))
        outcome = c.wait_run("boxes", timeout=120)
        ranks = sorted(client.tasks(job="boxes"), key=lambda t: t.slot)
        out = client.logs("boxes.1.0.0", "stdout").data
        err = client.logs("boxes.1.0.0", "stderr").data
    assert outcome == "SUCCEEDED", ([(t.id, t.state.value, t.reason) for t in ranks], out, err)
    assert sorted((t.hostname, t.state.value) for t in ranks) == [
        ("node-a", "FINISHED"),
        ("node-b", "FINISHED"),
    ]
    here, remote, status = out.splitlines()
    assert remote.startswith("rank 1 of 2 on "), out
    assert status == "status 0", out
    # Docker names a container's host after its id: the command ran in rank 1's container.
    assert here.split()[1] != remote.split()[-1], out


def test_corral_exec_runs_in_a_container_task(cluster: Cluster, tmp_path: Path) -> None:
    image = ensure_test_image()
    c = cluster
    c.add_agent("node-a", cpus=1)
    spec = {
        "name": "box",
        "task": {"shell": "sleep 600", "cpus": 0.5, "mem": 64, "docker": {"image": image}},
    }
    with c.client() as client:
        client.create_job(JobSpec.model_validate(spec))
    c.wait_task("box.1.0.0", "RUNNING")
    script = 'cat; echo " $CORRAL_TASK_ID $MESOS_SANDBOX"; exit 4'
    done = corral_exec(c, "-i", "box.1.0.0", "--", "sh", "-c", script, stdin="in the box")
    assert (done.returncode, done.stdout) == (4, "in the box box.1.0.0 /mnt/mesos/sandbox\n"), done
    with c.client() as client:
        client.kill_job("box")
    assert c.wait_run("box") == "KILLED"
