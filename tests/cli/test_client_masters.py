"""Clients given several masters: one that cannot be reached is left for the next, the leader
an answer names is asked from then on, a request that reached a master is never sent to
another, and none reachable is one error naming them all."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from corral.cli.main import app
from corral.client import AsyncClient, Client, UnreachableError
from corral.client.config import read_config_file
from corral.spec.jobs import JobSpec
from tests.cli.fake_master import serving
from tests.cli.samples import job_view
from tests.support.cluster import free_port


def master(name: str, seen: list[str], leader: str | None = None) -> AbstractContextManager[str]:
    """A master that answers its info, naming ``leader`` (if any) as Corral's masters do."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{name} {request.method} {request.url.path}")
        headers = {"X-Corral-Leader": leader} if leader else {}
        if request.method == "POST":
            return httpx.Response(503, json={"detail": "no master leads"}, headers=headers)
        return httpx.Response(200, json={"name": "corral", "version": name}, headers=headers)

    return serving(handle)


def nobody() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_a_master_that_cannot_be_reached_is_left_for_the_next() -> None:
    seen: list[str] = []
    with master("m2", seen) as m2, Client(f"{nobody()},{m2}") as client:
        assert client.info().version == "m2"
        assert client.info().version == "m2"
    assert seen == ["m2 GET /api/v1/info"] * 2


def test_the_leader_an_answer_names_is_asked_from_then_on() -> None:
    seen: list[str] = []
    with master("m2", seen) as m2, master("m1", seen, leader=m2) as m1:
        with Client(f"{m1},{m2}") as client:
            assert client.info().version == "m1"  # a follower's answer, naming m2
            assert client.info().version == "m2"
    assert seen == ["m1 GET /api/v1/info", "m2 GET /api/v1/info"]


def test_a_request_that_reached_a_master_is_not_sent_to_another() -> None:
    seen: list[str] = []
    with master("m1", seen) as m1, master("m2", seen) as m2, Client(f"{m1},{m2}") as client:
        with pytest.raises(Exception, match="no master leads"):
            client.accounts.create_token(name="x")
    assert seen == ["m1 POST /api/v1/tokens"]


def between_leaders(name: str, seen: list[str], refusals: int) -> AbstractContextManager[str]:
    """A follower while no master leads, ``refusals`` times (503 with Retry-After: the call
    was not handed on), then one that hands calls on."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{name} {request.method} {request.url.path}")
        if len(seen) <= refusals:
            return httpx.Response(
                503, json={"detail": "no master leads"}, headers={"Retry-After": "1"}
            )
        return httpx.Response(201, json=job_view("j").model_dump(mode="json"))

    return serving(handle)


def test_a_call_refused_for_want_of_a_leader_is_sent_again_until_one_leads() -> None:
    seen: list[str] = []
    job = JobSpec.model_validate({"name": "j", "task": {"command": ["true"]}})
    with between_leaders("m1", seen, refusals=3) as m1, Client(m1) as client:
        assert client.create_job(job).name == "j"
    assert seen == ["m1 POST /api/v1/jobs"] * 4  # nothing of a refused call was done


def test_a_call_refused_for_want_of_a_leader_goes_to_the_next_master_at_once() -> None:
    seen: list[str] = []
    with between_leaders("m1", seen, refusals=10) as m1, master("m2", seen) as m2:
        with Client(f"{m1},{m2}") as client:
            assert client.info().version == "m2"
    assert seen == ["m1 GET /api/v1/info", "m2 GET /api/v1/info"]


def test_when_no_master_answers_the_error_says_so() -> None:
    with Client(f"{nobody()},{nobody()}") as client, pytest.raises(UnreachableError):
        client.info()


def test_the_asyncio_client_leaves_an_unreachable_master_for_the_next() -> None:
    seen: list[str] = []

    async def ask(url: str) -> list[str]:
        async with AsyncClient(url) as client:
            return [(await client.info()).version, (await client.info()).version]

    with master("m2", seen) as m2, master("m1", seen, leader=m2) as m1:
        assert asyncio.run(ask(f"{nobody()},{m1},{m2}")) == ["m1", "m2"]
    assert seen == ["m1 GET /api/v1/info", "m2 GET /api/v1/info"]


def test_the_asyncio_client_sends_a_call_refused_for_want_of_a_leader_again() -> None:
    seen: list[str] = []
    job = JobSpec.model_validate({"name": "j", "task": {"command": ["true"]}})

    async def create(url: str) -> str:
        async with AsyncClient(url) as client:
            return (await client.create_job(job)).name

    with between_leaders("m1", seen, refusals=3) as m1:
        assert asyncio.run(create(m1)) == "j"
    assert seen == ["m1 POST /api/v1/jobs"] * 4


def test_the_asyncio_client_says_when_no_master_answers() -> None:
    async def ask(url: str) -> None:
        async with AsyncClient(url) as client:
            await client.info()

    with pytest.raises(UnreachableError):
        asyncio.run(ask(f"{nobody()},{nobody()}"))


def test_a_config_file_may_list_the_masters(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"url": ["http://m1:8080", "http://m2:8080"], "token": "t"}))
    assert read_config_file(path).url == "http://m1:8080,http://m2:8080"


def test_the_cli_leaves_a_master_that_cannot_be_reached_for_the_next() -> None:
    seen: list[str] = []
    with master("m2", seen) as m2:
        env = {"CORRAL_URL": f"{nobody()},{m2}", "CORRAL_TOKEN": "t"}
        result = CliRunner(env=env).invoke(app, ["whoami"])
    assert seen == ["m2 GET /api/v1/info"], result.output


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["agent", "--master", "m1:8080"], "'m1:8080' is not a URL"),
        (["agent", "--master", " , "], "give the URL of a master"),
        (["master", "--advertise", "m1:8080"], "'m1:8080' is not a URL"),
    ],
)
def test_server_commands_refuse_a_master_url_that_is_not_one(args: list[str], refused: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert refused in " ".join(result.output.split())
