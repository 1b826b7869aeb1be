"""Keyset pages of the native API's long lists (tasks, jobs, runs).

A list asked with ``limit`` answers at most that many items; when more follow, the answer says
where the next page starts: ``Link: <path?...&after=CURSOR>; rel="next"`` (RFC 8288, as GitHub
pages) and ``X-Corral-Next: CURSOR``. The cursor is opaque to clients: pass it back as
``after``. It names the last item of the page, so a page costs what it holds (the store reads
on from there through an index), however far into the list it is, and items added meanwhile
never shift a page. Marathon's and Chronos' lists stay whole, as their clients expect.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import HTTPException, Query, Request, Response

T = TypeVar("T")
NEXT_HEADER = "X-Corral-Next"
MAX_PAGE = 100_000

Limit = Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="At most this many.")]
After = Annotated[
    str | None,
    Query(max_length=1000, description="The cursor of the page to read: a page's X-Corral-Next."),
]


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Say where the next page starts (nothing when this page is the last)."""
    if cursor is None:
        return
    url = request.url.include_query_params(after=cursor)
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    response.headers[NEXT_HEADER] = cursor


def ask(limit: int | None) -> int | None:
    """How many items to read for a page of ``limit``: one more says whether a next page
    exists."""
    return None if limit is None else limit + 1


def cut(
    items: Sequence[T], limit: int | None, cursor_of: Callable[[T], str]
) -> tuple[Sequence[T], str | None]:
    """The page of ``items`` (read with ``ask(limit)``), and the cursor of the next page
    (None: this one is the last)."""
    if limit is None or len(items) <= limit:
        return items, None
    return items[:limit], cursor_of(items[limit - 1])


def bad_cursor() -> HTTPException:
    """The answer to a cursor this list did not give."""
    return HTTPException(400, "after: not a cursor of this list (pass back a page's X-Corral-Next)")


def seq_cursor(seq: int) -> str:
    """The cursor after the task numbered ``seq``."""
    return str(seq)


def read_seq(cursor: str | None) -> int | None:
    """The task number a cursor names (None: from the start)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise bad_cursor()
    return int(cursor)


def job_cursor(created_at: float, name: str) -> str:
    """The cursor after the job ``name`` created at ``created_at``."""
    return base64.urlsafe_b64encode(json.dumps([created_at, name]).encode()).decode()


def read_job(cursor: str | None) -> tuple[float, str] | None:
    """The (creation time, name) a jobs cursor names (None: from the start)."""
    if cursor is None:
        return None
    try:
        at, name = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise bad_cursor() from None
    if not isinstance(at, int | float) or not isinstance(name, str):
        raise bad_cursor()
    return float(at), name
