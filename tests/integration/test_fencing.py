"""Two masters on one store: the one started last leads, and the older one, fenced by its
epoch, changes nothing more (its API answers 503 to writes) instead of fighting over the store."""

from __future__ import annotations

import signal

import httpx
import pytest

from corral.client import ApiError, Client
from corral.spec.jobs import JobSpec
from tests.support.cluster import CORRAL, Cluster, Proc, free_port


def job(name: str) -> JobSpec:
    return JobSpec.model_validate({"name": name, "task": {"command": ["true"]}})


def test_a_master_replaced_by_a_newer_one_on_its_store_refuses_every_write(
    cluster: Cluster,
) -> None:
    with cluster.client() as old:
        old.create_job(job("before"))
    port = free_port()
    newer = Proc(
        [
            *CORRAL,
            "master",
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(cluster.root / "master"),
        ],
        cluster.root / "master-2.log",
    )
    newer.start()
    try:
        url = f"http://127.0.0.1:{port}"
        cluster.wait_until(lambda: _answers(url), 30, "the second master to answer")
        with cluster.client() as old, pytest.raises(ApiError) as refused:
            old.create_job(job("late"))
        assert refused.value.status == 503
        assert "no longer the leader: epoch 2 leads now" in refused.value.message
        with Client(url, cluster.token) as leader:
            leader.create_job(job("after"))
            assert {j.name for j in leader.jobs()} == {"before", "after"}  # "late" never was
    finally:
        newer.signal(signal.SIGTERM)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
