"""No request about a sandbox file can take an agent down, and files come back as the bytes they
hold: a NUL in the path, a FIFO, a symlink out of the sandbox, a large read of control bytes and
a log that is not UTF-8."""

from collections.abc import Iterator

import httpx
import pytest

from corral.spec.jobs import JobSpec
from corral.spec.views import LogChunk
from tests.support.cluster import Cluster, running_cluster, shell_wait_for

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """One cluster for the module: its tests only read the one task's sandbox, and each checks
    that the agent still serves after its request."""
    failed = request.session.testsfailed
    with running_cluster(Cluster(tmp_path_factory.mktemp("sandbox-files")), request) as c:
        yield c
        if request.session.testsfailed > failed:
            print(c.logs())


@pytest.fixture(scope="module")
def sandbox_task(cluster: Cluster) -> str:
    """A running task whose sandbox holds a FIFO, a link to /etc/shadow, 4 MiB of \\x01 and
    5 MB of \\xff (its stdout)."""
    cluster.add_agent("a1")
    gate = cluster.root / "gate"  # never opened: the task runs until the cluster stops
    shell = (
        "mkfifo fifo; ln -s /etc/shadow shadow; mkdir sub; ln -s /etc sub/etc; "
        f"head -c {4 * MIB} /dev/zero | tr '\\0' '\\1' > control; "
        "head -c 5000000 /dev/zero | tr '\\0' '\\377'; "
        f"touch ready; {shell_wait_for(gate)}"
    )
    with cluster.client() as c:
        c.create_job(JobSpec.model_validate({"name": "files", "task": {"shell": shell}}))
        cluster.wait_task("files.1.0.0", "RUNNING")
    ready = cluster.root / "agents" / "a1" / "tasks" / "files.1.0.0" / "sandbox" / "ready"
    cluster.wait_until(ready.exists, 30, "the sandbox to be filled")
    return "files.1.0.0"


def get(cluster: Cluster, path: str, **params: int) -> httpx.Response:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    return httpx.get(f"{cluster.url}{path}", params=params, headers=headers, timeout=30)


def agent_still_serves(cluster: Cluster, task_id: str) -> None:
    """The agent answers the next request at once, on the same connection."""
    with cluster.client() as c:
        (agent,) = c.agents()
        assert agent.connected and agent.state.value == "ACTIVE"
        assert c.logs(task_id, length=4).content() == b"\xff" * 4


def test_a_nul_byte_in_a_file_path_is_refused_and_the_agent_stays(
    cluster: Cluster, sandbox_task: str
) -> None:
    got = get(cluster, f"/api/v1/tasks/{sandbox_task}/files/stdout%00x")
    assert got.status_code == 404
    assert "NUL" in got.json()["detail"]
    agent_still_serves(cluster, sandbox_task)


def test_a_fifo_is_not_opened_and_the_agent_does_not_freeze(
    cluster: Cluster, sandbox_task: str
) -> None:
    got = get(cluster, f"/api/v1/tasks/{sandbox_task}/files/fifo")
    assert got.status_code == 404
    assert "not a regular file" in got.json()["detail"]
    agent_still_serves(cluster, sandbox_task)


@pytest.mark.parametrize("name", ["shadow", "sub/etc/shadow", "../../../../etc/shadow"])
def test_links_and_paths_out_of_the_sandbox_are_not_followed(
    cluster: Cluster, sandbox_task: str, name: str
) -> None:
    got = get(cluster, f"/api/v1/tasks/{sandbox_task}/files/{name}")
    assert got.status_code == 404
    assert "root:" not in got.text
    assert str(cluster.root) not in got.text  # no path of the agent's disk in the answer
    agent_still_serves(cluster, sandbox_task)


def test_a_4_mib_read_of_control_bytes_comes_back_whole(
    cluster: Cluster, sandbox_task: str
) -> None:
    got = get(cluster, f"/api/v1/tasks/{sandbox_task}/files/control", length=4 * MIB)
    assert got.status_code == 200
    chunk = LogChunk.model_validate(got.json())
    assert chunk.content() == b"\x01" * (4 * MIB)
    assert chunk.next_offset == chunk.size == 4 * MIB
    agent_still_serves(cluster, sandbox_task)


def test_a_log_that_is_not_utf_8_comes_back_byte_for_byte(
    cluster: Cluster, sandbox_task: str
) -> None:
    received = b""
    with cluster.client() as c:
        while len(received) < 5_000_000:
            chunk = c.logs(sandbox_task, offset=len(received), length=4 * MIB)
            assert chunk.encoding == "base64"
            received += chunk.content()
    assert received == b"\xff" * 5_000_000  # not 15 MB of U+FFFD
    page = get(cluster, f"/ui/tasks/{sandbox_task}/files/stdout")
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.content == b"\xff" * MIB
