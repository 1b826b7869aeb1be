"""Several masters: a client given their URLs talks to one at a time, moves to the next when
one cannot be reached, and follows the leader each answer names (``X-Corral-Leader``).

A call a master answers 503 with ``Retry-After`` (no master leads at the moment: a failover is
under way; the call was not handed on, so nothing of it was done) is sent again, to each master
in turn, for up to ``FAILOVER_WAIT`` seconds.

A URL list is written with commas (``CORRAL_URL=http://m1:8080,http://m2:8080``, ``--url``, the
config file's ``url``, which may also be a JSON list). Only a master that could not be reached
is left for the next: a request that reached one is never sent again, so nothing is done twice.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from corral.client.errors import ClientError, UnreachableError

LEADER_HEADER = "x-corral-leader"
FAILOVER_WAIT = 10.0  # seconds a call refused for want of a leader is sent again (> a lease)
RETRY_EVERY = 0.2  # seconds between those tries


def not_handed_on(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an answer says the call was refused before anything was done (a master with
    no leader to hand it to): it may be sent again."""
    return status == 503 and "retry-after" in headers


def master_urls(url: str) -> list[str]:
    """The masters' URLs in ``url`` (one, or several separated by commas), without trailing
    slashes; ``ClientError`` if there is none."""
    urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
    if not urls:
        raise ClientError(f"invalid master URL {url!r}: give http://HOST[:PORT]")
    return urls


class Rotation:
    """The masters' URLs and which one is asked now."""

    def __init__(self, url: str) -> None:
        self.urls = master_urls(url)
        self.at = 0

    @property
    def current(self) -> str:
        """The URL asked now."""
        return self.urls[self.at]

    def attempts(self) -> Iterator[int]:
        """Each master's index once, starting with the current one."""
        for step in range(len(self.urls)):
            yield (self.at + step) % len(self.urls)

    def follow(self, headers: Mapping[str, str]) -> None:
        """Ask the leader an answer named from now on, if it is one of ours."""
        leader = headers.get(LEADER_HEADER)
        if leader and leader.rstrip("/") in self.urls:
            self.at = self.urls.index(leader.rstrip("/"))


class Answer(Protocol):
    """What the failover reads of an answer (``httpx.Response`` and the sync client's)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


A = TypeVar("A", bound=Answer)


@dataclass(frozen=True, slots=True)
class Ask:
    """Send the call to master ``index``; send back its answer, or the ``UnreachableError``."""

    index: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds``, then send back None."""

    seconds: float


Failover = Generator[Ask | Wait, A | UnreachableError | None, A]


def failover(rotation: Rotation) -> Failover[A]:
    """One call's way through the masters, without I/O (the sync and the async client each
    drive it with their own sends and sleeps): each master in turn from the current one, until
    one hands the call on; the leader an answer names is asked from then on; while every
    master refuses for want of a leader, again after ``RETRY_EVERY`` for up to
    ``FAILOVER_WAIT``. Returns the answer (the last refusal once the wait is over); raises the
    last ``UnreachableError`` when no master could be reached."""
    deadline = time.monotonic() + FAILOVER_WAIT
    while True:
        unreachable: UnreachableError | None = None
        refused: A | None = None
        for i in rotation.attempts():
            got = yield Ask(i)
            assert got is not None  # an Ask is answered
            if isinstance(got, UnreachableError):
                unreachable = got  # nothing was sent: the next master may be asked
                continue
            rotation.at = i
            rotation.follow(got.headers)
            if not not_handed_on(got.status_code, got.headers):
                return got
            refused = got  # another master may know the leader already
        if refused is None:
            assert unreachable is not None
            raise unreachable
        if time.monotonic() + RETRY_EVERY > deadline:
            return refused
        yield Wait(RETRY_EVERY)  # a failover is under way


def json_url(value: Any) -> str | None:
    """A config file's ``url``: a string, or a list of strings joined by commas."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return ",".join(value)
    return None
