"""Fuzzing the native API with schemathesis, in process, against the app the API tests build.

Every request the OpenAPI document allows (and many it does not) must get an answer that is not a
server error and, where the document describes the answer, one that fits it. After every request
the store must hold whole objects only: a job with all of its runs, a run with all of its tasks.

The event stream (``GET /api/v1/events``) never ends, so it is left out; the agents' WebSocket is
not in the document. Sizes are kept small so the file runs in well under a minute on two cores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, CheckFunction, HookContext, Response
from schemathesis import Case as GenericCase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from sqlalchemy import func, select

from corral.api.app import create_app
from corral.master.master import Master
from corral.spec.jobs import NAME_PATTERN
from corral.store.schema import jobs, runs, tasks
from corral.store.store import Store
from tests.api.conftest import FixedClock

Case = GenericCase[Any]  # of any operation
EVENTS = "/api/v1/events"
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
]
# Examples per operation in the fuzzing phase; the examples and coverage phases add their own.
CONFIG = schemathesis.Config.from_dict({"generation": {"max-examples": 15}})
# A request that creates an array of tasks can take a while: time is not what is tested here.
PATIENT = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- valid job specs, so that fuzzing creates, applies, runs, kills and deletes real jobs
#
# A spec generated from the document alone is almost never valid (exactly one of command and
# shell, a parseable array, parameter names that are identifiers...), so half of the bodies sent
# to POST /jobs and PUT /jobs/{name} are replaced by valid ones. A few fixed names make requests
# collide: 409 on a second create, a new run on a changed apply.

_RANGE = st.builds(
    lambda start, length, step: f"{start}-{start + length}:{step}" if length else str(start),
    st.integers(0, 1000),
    st.integers(0, 20),
    st.integers(1, 4),
)
_IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(
    lambda n: n != "index"
)
_TASK = st.one_of(
    st.fixed_dictionaries({"command": st.lists(st.text(min_size=1), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"shell": st.text(min_size=1).filter(str.strip)}),
)


def valid_jobs(name: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid job specs of at most a few hundred tasks."""
    return st.fixed_dictionaries(
        {"name": name, "task": _TASK},
        optional={
            "array": st.lists(_RANGE, min_size=1, max_size=3).map(",".join),
            "params": st.dictionaries(
                _IDENTIFIER, st.lists(st.text(max_size=5), min_size=1, max_size=3), max_size=2
            ),
            "retries": st.integers(0, 3),
            "priority": st.integers(-1000, 1000),
            "description": st.text(max_size=20),
        },
    )


_JOB_NAMES = st.sampled_from(["sim", "sweep", "a.b-c"]) | st.from_regex(
    NAME_PATTERN, fullmatch=True
)


def with_valid_jobs(context: HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Send a valid spec half of the time (for PUT, under the name in the URL)."""
    label = "" if context.operation is None else context.operation.label
    if label not in ("POST /api/v1/jobs", "PUT /api/v1/jobs/{name}"):
        return st.just(case)

    def sending(body: dict[str, Any]) -> Case:
        sent = case.derive()
        sent.body = body
        if case.method.upper() == "PUT":
            sent.path_parameters["name"] = body["name"]
        return sent

    return st.just(case) | valid_jobs(_JOB_NAMES).map(sending)


def load_schema(master: Master, token: str) -> BaseSchema:
    """The app's own OpenAPI document (it needs the token too), without the event stream."""
    app = create_app(master)
    schema = schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", app, config=CONFIG, headers=auth(token)
    )
    schema.hook("flatmap_case")(with_valid_jobs)
    return schema.exclude(method="GET", path=EVENTS)


def half_written(master: Master) -> list[str]:
    """What in the store is not whole: a job whose runs are not all there, a run whose number of
    newest-attempt tasks differs from its total, tasks of no job."""
    problems: list[str] = []
    with master.store.engine.connect() as conn:
        run_rows: dict[str, int] = dict(
            conn.execute(select(runs.c.job, func.count()).group_by(runs.c.job)).all()
        )
        for name, number in conn.execute(select(jobs.c.name, jobs.c.runs)):
            if run_rows.get(name, 0) != number:
                problems.append(
                    f"job {name!r} says {number} runs; the store has {run_rows.get(name, 0)}"
                )
        latest = {
            (job, run): n
            for job, run, n in conn.execute(
                select(tasks.c.job, tasks.c.run, func.count())
                .where(tasks.c.latest)
                .group_by(tasks.c.job, tasks.c.run)
            )
        }
        for job, number, total in conn.execute(select(runs.c.job, runs.c.number, runs.c.total)):
            have = latest.pop((job, number), 0)
            if have != total:
                problems.append(f"run {number} of {job!r} says {total} tasks; the store has {have}")
        problems += [
            f"{n} tasks of run {r} of {j!r}, a run not stored" for (j, r), n in latest.items()
        ]
    return problems


# --- one request at a time, every operation, with schemathesis' examples, coverage and fuzzing


@pytest.fixture
def api_schema(master: Master, token: str) -> BaseSchema:
    return load_schema(master, token)


@pytest.fixture(autouse=True)
def _legacy_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis' fixture-based parametrization reads and rewrites `item._nodeid`, which pytest
    # 9.2 no longer has (node ids moved to `_id`); give it one to read.
    request.node._nodeid = request.node.nodeid


# The fixture schema's own filters give way to these when schemathesis parametrizes the test.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(method="GET", path=EVENTS)


@schema.parametrize()
@PATIENT
def test_no_single_request_breaks_the_server_or_leaves_half_written_objects(
    case: Case, master: Master, token: str
) -> None:
    case.call_and_validate(headers=auth(token), checks=CHECKS)
    assert half_written(master) == []


# --- what fuzzing finds now and then, every time


@pytest.fixture
def client(master: Master, token: str) -> Iterator[TestClient]:
    app = create_app(master)
    with TestClient(app, headers=auth(token), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/jobs/sim/runs/{2**63}"),
        ("POST", f"/api/v1/jobs/sim/runs/{2**63}/kill"),
        ("GET", f"/api/v1/tasks?run={2**63}"),
        ("GET", f"/api/v1/tasks?run={-(2**63) - 1}"),
    ],
)
def test_a_number_the_store_cannot_hold_is_an_answer_not_a_server_error(
    client: TestClient, method: str, path: str
) -> None:
    # Integers in paths and queries are unbounded in the document; SQLite holds 64 bits.
    assert client.request(method, path).status_code < 500


def test_the_logs_of_a_task_killed_before_it_ran_are_an_answer_not_a_server_error(
    client: TestClient,
) -> None:
    # 503 says "try again later"; a task that never ran never will have logs.
    assert client.post("/api/v1/jobs", json={"name": "never", "task": {"shell": "true"}}).is_success
    assert client.post("/api/v1/jobs/never/kill").is_success
    answer = client.get("/api/v1/tasks/never.1.0.0/logs/stdout")
    assert answer.status_code < 500, answer.text


# JSON may escape a lone surrogate ("\ud800"), which is no Unicode character: Python's json module
# reads it into a str that cannot be encoded back. Hypothesis never generates one.
@pytest.mark.parametrize(
    "body",
    [
        '{"name": "bad", "task": {"shell": "echo \\ud800"}}',
        '{"name": "bad", "task": {"command": ["echo", "\\udfff"]}}',
        '{"name": "bad", "task": {"shell": "true", "env": {"A": "\\ud800"}}}',
        '{"name": "bad", "task": {"shell": "true"}, "description": "\\udfff"}',
    ],
)
def test_a_string_that_is_not_unicode_is_refused_and_nothing_is_stored(
    client: TestClient, master: Master, body: str
) -> None:
    answer = client.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    stored = master.store.job("bad") is not None
    assert 400 <= answer.status_code < 500 and not stored, (
        f"answered {answer.status_code}; the job was {'' if stored else 'not '}stored"
    )
    assert client.get("/api/v1/tasks").status_code == 200


# --- sequences: links between operations (a created job's name used by GET, kill, runs, DELETE;
# a listed task's id by its kill and logs) are inferred by schemathesis from the document. Each
# scenario gets a master of its own, made like the `master` fixture: a scenario that fails
# reproduces by itself, from an empty store.


def new_master(directory: Path) -> tuple[Master, str]:
    """A master and its admin token, on a fresh store, the way tests/api/conftest.py makes them."""
    store = Store.in_dir(directory)
    store.migrate()
    master = Master(store, FixedClock())
    master.agents.load()
    master.state.load()
    return master, master.ensure_admin_token(directory / "admin.token")


def test_no_sequence_of_requests_breaks_the_server_or_leaves_half_written_objects(
    tmp_path: Path,
) -> None:
    # The scenarios' masters are on SQLite (new_master), whatever the backend: the test is not
    # run once per backend, which would only repeat it.
    documented, token = new_master(tmp_path / "schema")
    machine = load_schema(documented, token).as_state_machine()
    scenarios = itertools.count()

    class Scenario(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            self.master, self.token = new_master(tmp_path / f"scenario-{next(scenarios)}")
            self.app = create_app(self.master)

        def teardown(self) -> None:
            self.master.store.close()

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": auth(self.token), "app": self.app}

        def validate_response(
            self,
            response: Response,
            case: Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            assert half_written(self.master) == [], case.as_curl_command()

    # No shrinking (as schemathesis runs scenarios itself): replaying a long scenario many times
    # costs more than reading it.
    try:
        Scenario.run(
            settings=settings(
                PATIENT, max_examples=25, stateful_step_count=10, phases=[Phase.generate]
            )
        )
    finally:
        documented.store.close()
