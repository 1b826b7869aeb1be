"""Gang jobs in containers: an unmodified mpirun across three agents' containers; mpirun's remote
shell, called in rank 0's container, runs its command in the container of the gang's rank on
another agent (Docker exec); ``corral exec`` into a container."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from corral.agent import task_record
from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from tests.integration.test_gangs import corral_exec, tasks_of
from tests.support.cluster import Cluster
from tests.support.images import ensure_test_image
from tests.support.mpi import LINE, MPI_TEST_ENV, compile_mpi_program
from tests.support.mpi_image import ensure_mpi_image

pytestmark = pytest.mark.integration

# What mpirun does through plm_rsh_agent, in words a busybox shell has: run a command in the
# gang's task on the other node (node rank 1, rank 1), and wait for it; then rank 0 is done.
RSH = (
    "set -- $(echo $CORRAL_HOSTS | tr , ' '); echo here $(hostname); "
    "$OMPI_MCA_plm_rsh_agent $2 'echo rank $CORRAL_RANK of $CORRAL_GANG_SIZE on $(hostname)'; "
    "echo status $?"
)


def container_of(c: Cluster, task: TaskView) -> str:
    """The id of a Docker task's container, from its agent's records (kept once it ended)."""
    root = c.root / "agents" / (task.hostname or "") / "tasks" / task.id
    container = task_record.read(root).container
    assert container is not None, f"no container recorded for {task.id}"
    return container


@pytest.mark.timeout(300)  # the image, three agents, and a run given 180 s
@pytest.mark.parametrize("network", ["BRIDGE", "HOST"])
def test_an_unmodified_mpirun_runs_a_gang_of_3_nodes_of_2_ranks_in_their_containers(
    cluster: Cluster, tmp_path: Path, network: str
) -> None:
    program = compile_mpi_program(tmp_path)  # first: it says when Open MPI is missing
    image = ensure_mpi_image()
    c = cluster
    c.add_agents(["node-a", "node-b", "node-c"], cpus=2, allow_volumes=[tmp_path])
    spec = {
        "name": "allreduce",
        "nodes": 3,
        "tasks_per_node": 2,
        "task": {
            "command": ["mpirun", "--mca", "btl", "self,tcp", f"/mpi/{program.name}"],
            "env": MPI_TEST_ENV,
            "cpus": 1,
            "mem": 256,
            "docker": {
                "image": image,
                "network": network,
                "volumes": [{"container_path": "/mpi", "host_path": str(tmp_path), "mode": "RO"}],
            },
        },
    }
    with c.client() as client:
        client.create_job(JobSpec.model_validate(spec))
        try:
            outcome = c.wait_run("allreduce", timeout=180)
        except AssertionError:
            outcome = "did not end in 180 s"  # said below with the ranks' states and output
        ranks = tasks_of(c, "allreduce")
        out = client.logs("allreduce.1.0.0", "stdout", 0, 1 << 20).data
        err = client.logs("allreduce.1.0.0", "stderr", 0, 1 << 16).data
    states = [(t.id, t.hostname, t.state.value, t.reason) for t in ranks]
    assert outcome == "SUCCEEDED", (states, out, err)
    host_of = {t.slot: t.hostname or "" for t in ranks}
    assert sorted({host_of[0], host_of[2], host_of[4]}) == ["node-a", "node-b", "node-c"]
    containers = {t.id: container_of(c, t) for t in ranks}
    lines = [m.groupdict() for m in LINE.finditer(out)]
    assert sorted(int(line["rank"]) for line in lines) == list(range(6)), out
    for line in lines:
        rank = int(line["rank"])
        assert (line["size"], line["sum"]) == ("6", "21"), line
        # MPI rank r ran in the container of the first task of Corral rank r's node: in the
        # cgroup Docker names after the container...
        leader = f"allreduce.1.{rank - rank % 2}.0"
        assert line["task"] == leader, line
        # (on its own network a container's host name is its id; on the host's, the host's)
        host = containers[leader][:12] if network == "BRIDGE" else socket.gethostname()
        assert line["host"] == host, (line, containers)
        assert line["cgroup"].endswith(containers[leader]), (line, containers)
        # ... whose limits are the node's: 2 ranks of 1 cpu and 256 MiB.
        assert (line["mem"], line["cpu"]) == (str(512 << 20), "200000"), line


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


def running_box(c: Cluster) -> str:
    """A container task that sleeps, on an agent of its own, once RUNNING: its id."""
    c.add_agent("node-a", cpus=1)
    docker = {"image": ensure_test_image()}
    # Its shell, the container's PID 1, ignores SIGTERM: the kill that ends the test needs not
    # wait out the default 10 s grace for the SIGKILL.
    task = {"shell": "sleep 600", "cpus": 0.5, "mem": 64, "docker": docker, "kill_grace": 1}
    with c.client() as client:
        client.create_job(JobSpec.model_validate({"name": "box", "task": task}))
    c.wait_task("box.1.0.0", "RUNNING")
    return "box.1.0.0"


def test_corral_exec_runs_in_a_container_task(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    running_box(c)
    script = 'cat; echo " $CORRAL_TASK_ID $MESOS_SANDBOX"; exit 4'
    done = corral_exec(c, "-i", "box.1.0.0", "--", "sh", "-c", script, stdin="in the box")
    assert (done.returncode, done.stdout) == (4, "in the box box.1.0.0 /mnt/mesos/sandbox\n"), done
    with c.client() as client:
        client.kill_job("box")
    assert c.wait_run("box") == "KILLED"
