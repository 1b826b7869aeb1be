"""What the client raises: one base class, with the master's answer turned into readable text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class Answer(Protocol):
    """What both clients read of an HTTP answer (``httpx.Response`` and the blocking client's
    own ``Response`` have it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def is_error(self) -> bool: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


class ClientError(Exception):
    """Anything that kept a call from getting an answer; ``str()`` is the message for a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The master answered with an error status (4xx or 5xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r})"


class UnreachableError(ClientError):
    """No connection to the master could be made (refused, unknown host, timed out)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(
            f"the corral master at {url} is not reachable ({cause}); "
            "is it running? Set CORRAL_URL or pass --url to point elsewhere"
        )
        self.url = url


def describe_errors(items: Iterable[Mapping[str, Any]]) -> str:
    """Turn pydantic/FastAPI error items into one line: ``task.cpus: Input should be ...``.

    Works for both a 422 answer's ``detail`` list and ``ValidationError.errors()``. The leading
    ``body`` of FastAPI's locations is dropped: the user wrote the body, not a field named body.
    """
    parts: list[str] = []
    for item in items:
        loc = [str(p) for p in item.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        msg = str(item.get("msg", "invalid"))
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid input"


def error_from_response(response: Answer) -> ApiError:
    """Build the ``ApiError`` for an error answer, reading FastAPI's ``detail`` when present."""
    status = response.status_code
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        # Not FastAPI talking (a proxy, a crash page): show the start of what came back.
        text = response.text.strip()[:200]
        return ApiError(status, f"HTTP {status} {response.reason_phrase}: {text}".rstrip(": "))
    if isinstance(detail, list) and all(isinstance(d, Mapping) for d in detail):
        return ApiError(status, describe_errors(detail))
    if isinstance(detail, str) and detail:
        return ApiError(status, detail)
    return ApiError(status, f"HTTP {status} {response.reason_phrase}")
