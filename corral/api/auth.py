"""Where a request carries its token: as ``Bearer``, as ``token=`` (DC/OS style), or as the
password of HTTP basic auth (which Marathon and Chronos clients send). Who the token stands for
is ``AccountOps.authenticate``'s to say, and what it may do ``corral.api.authz``'s."""

from __future__ import annotations

import base64
import binascii

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
