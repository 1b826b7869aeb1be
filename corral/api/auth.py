"""Who is calling: a token as ``Bearer``, as ``token=`` (DC/OS style), or as the password of HTTP
basic auth (which Marathon and Chronos clients send)."""

from __future__ import annotations

import base64
import binascii

from corral.master.queries import Queries

CHALLENGE = 'Bearer, Basic realm="corral"'


def token_of(header: str | None) -> str | None:
    """The token carried by an Authorization header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme.startswith("token="):  # DC/OS style, as Marathon's Python client sends it
        return header.partition("=")[2].strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


class Authenticator:
    """Checks tokens against the store; with ``required=False`` everyone is admin."""

    def __init__(self, queries: Queries, required: bool) -> None:
        self.queries = queries
        self.required = required

    def user(self, header: str | None) -> str | None:
        """The user a header authenticates, or None."""
        if not self.required:
            return "admin"
        token = token_of(header)
        if token is None:
            return None
        found = self.queries.token_user(token)
        return None if found is None else found[0]
