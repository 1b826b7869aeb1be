"""``RowClient``: listings as the master sends them, plain JSON with typed shapes and no models.

``corral jobs`` prints a few fields of each job. Validating each into the pydantic views
(``corral.spec.views``) would first load pydantic and build the spec models, several times what
the request costs. A row is a view's JSON object; its ``TypedDict`` names the fields read from
it (a test keeps them in step with the views), and times stay ISO 8601 strings. Use ``Client``
for anything that needs the validated views.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from corral.client._api import API
from corral.client._http import Blocking, Params
from corral.client.errors import ClientError, error_from_response


class RunRow(TypedDict):
    """Of a ``RunView``: its number, state, and its tasks per state (latest attempts)."""

    number: int
    state: str
    total: int
    counts: dict[str, int]


class JobSpecRow(TypedDict):
    """Of a ``JobSpec``: its schedule (in its zone) and the jobs it runs after."""

    schedule: str | None
    timezone: str
    parents: list[str]


class JobRow(TypedDict):
    """Of a ``JobView``: what the job listings show."""

    name: str
    owner: str
    spec: JobSpecRow
    created_at: str
    updated_at: str
    runs: int
    last_run: RunRow | None
    success_count: int
    error_count: int
    next_run: str | None


class RowClient(Blocking):
    """Read-only listings of ``/api/v1`` as rows; raises ``ClientError`` (or ``ApiError``) as
    ``Client`` does, also for an answer that is not a list of objects with a row's fields.

    Made, used and closed as ``Client`` is.
    """

    def jobs(self, owner: str | None = None, q: str | None = None) -> list[JobRow]:
        """Jobs, newest first, optionally of one owner or matching ``q`` (as ``Client.jobs``)."""
        params = {k: v for k, v in {"owner": owner, "q": q}.items() if v is not None}
        rows = self._list(f"{API}/jobs", params, JobRow.__required_keys__)
        return cast(list[JobRow], rows)

    def _list(self, path: str, params: Params, keys: frozenset[str]) -> list[Mapping[str, Any]]:
        answer = self._http.request("GET", path, params)
        if answer.is_error:
            raise error_from_response(answer)
        try:
            rows = answer.json()
        except ValueError:
            rows = None
        # Only the top level is checked: enough to tell a master of another kind or version.
        if not isinstance(rows, list) or not all(
            isinstance(row, dict) and keys <= row.keys() for row in rows
        ):
            raise ClientError(
                f"unexpected answer from the master to GET {path}: "
                f"not a list of objects with {', '.join(sorted(keys))}"
            )
        return rows
