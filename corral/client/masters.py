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

from collections.abc import Iterator, Mapping
from typing import Any

from corral.client.errors import ClientError

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


def json_url(value: Any) -> str | None:
    """A config file's ``url``: a string, or a list of strings joined by commas."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return ",".join(value)
    return None
