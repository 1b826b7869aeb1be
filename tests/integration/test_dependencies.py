"""Dependent jobs on a real cluster: a child runs after all its parents succeeded."""

from pathlib import Path

from corral.spec.jobs import JobSpec
from tests.support.cluster import Cluster, shell_wait_for


def spec(name: str, shell: str = "true", **extra: object) -> JobSpec:
    return JobSpec.model_validate({"name": name, "task": {"shell": shell, "cpus": 0.1}, **extra})


def test_a_chain_runs_in_order_each_child_after_its_parent_succeeded(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("a1")
    gate = tmp_path / "gate"
    with cluster.client() as c:
        # The first job waits for the gate so that its children exist before it succeeds.
        c.create_job(spec("extract", shell=shell_wait_for(gate)))
        c.create_job(spec("transform", parents=["extract"]))
        c.create_job(spec("publish", parents=["transform"]))
        gate.touch()
        assert cluster.wait_run("publish") == "SUCCEEDED"
        started = {name: c.run(name, 1).created_at for name in ("extract", "transform", "publish")}
        assert started["extract"] < started["transform"] < started["publish"]
        assert c.job("extract").success_count == 1
        assert c.job("extract").children == ["transform"]


def test_a_failed_parent_does_not_start_its_child(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(spec("broken", shell="exit 2"))
        c.create_job(spec("after", parents=["broken"]))
        assert cluster.wait_run("broken") == "FAILED"
        assert c.job("broken").error_count == 1
        # A successful run of another job afterwards proves the master moved on meanwhile.
        c.create_job(spec("marker"))
        assert cluster.wait_run("marker") == "SUCCEEDED"
        assert c.job("after").runs == 0


def test_a_child_of_two_parents_waits_for_both(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(spec("left"))
        assert cluster.wait_run("left") == "SUCCEEDED"
        c.create_job(spec("right", shell="exit 1"))
        c.create_job(spec("join", parents=["left", "right"]))
        assert cluster.wait_run("right") == "FAILED"
        c.start_run("left")
        assert cluster.wait_run("left", 2) == "SUCCEEDED"
        assert c.job("join").runs == 0  # right has never succeeded
        c.apply_job(spec("right"))  # fixed: runs again, succeeds, and join follows
        assert cluster.wait_run("join") == "SUCCEEDED"
