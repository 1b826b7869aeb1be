"""What every call of the native API shares: where its paths start and how a token is sent."""

from __future__ import annotations

API = "/api/v1"


def auth_headers(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header for a bearer token, or nothing without one."""
    return {"Authorization": f"Bearer {token}"} if token else {}
