"""A master whose store's disk fills up: every write is answered 503 saying the store is full,
in each API's error format, nothing half-written is kept, and the master takes writes again by
itself once space is freed."""

from pathlib import Path

import httpx
import pytest

from corral.spec.jobs import JobSpec
from tests.support.cluster import Cluster, running_cluster
from tests.support.disks import fill, small_disk

pytestmark = pytest.mark.integration


def test_a_full_store_disk_answers_503_with_the_reason_until_space_is_freed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "cluster"
    with small_disk(root / "master", 16 * 1024), running_cluster(Cluster(root), request) as c:
        c.add_agent("a1")
        headers = {"Authorization": f"Bearer {c.token}"}
        job = {"name": "refused", "task": {"shell": "true", "cpus": 0.1}}
        app = {"id": "/refused", "cmd": "sleep 100", "cpus": 0.1, "mem": 16, "instances": 1}
        filler = fill(root / "master")
        try:
            native = httpx.post(f"{c.url}/api/v1/jobs", json=job, headers=headers, timeout=30)
            assert native.status_code == 503, native.text
            assert "state store is full" in native.json()["detail"]
            marathon = httpx.post(f"{c.url}/v2/apps", json=app, headers=headers, timeout=30)
            assert marathon.status_code == 503, marathon.text
            assert "state store is full" in marathon.json()["message"]
        finally:
            filler.unlink()
        with c.client() as api:
            assert [j.name for j in api.jobs()] == []  # nothing of the refused submit kept
            api.create_job(JobSpec.model_validate({**job, "name": "accepted"}))
            assert c.wait_run("accepted", timeout=60) == "SUCCEEDED"
