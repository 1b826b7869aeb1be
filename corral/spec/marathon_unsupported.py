"""Marathon app fields Corral accepts only empty (or at Marathon's default), and why not more.

Each is refused with its Marathon path and a sentence on what to do instead, never dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from corral.spec.marathon_errors import input_errors
from corral.spec.marathon_models import App, UnreachableStrategy

Problem = tuple[str, str]  # a Marathon path and why it is refused

_NO_FILES = (
    "not supported: Corral does not download files into the sandbox; use an image or a volume"
)


def unsupported(app: App) -> list[Problem]:
    """The fields of ``app`` whose values Corral cannot honour."""
    refused = [
        (app.executor not in ("", "//cmd"), "/executor", "custom executors are not supported"),
        (bool(app.fetch), "/fetch", _NO_FILES),
        (bool(app.uris), "/uris", _NO_FILES),
        (bool(app.store_urls), "/storeUrls", "not supported: Corral has no artifact store"),
        (
            app.kill_selection != "YOUNGEST_FIRST",
            "/killSelection",
            "only YOUNGEST_FIRST is supported: a scale down stops the newest tasks",
        ),
        (
            app.residency is not None,
            "/residency",
            "resident tasks (local persistent volumes) are not supported",
        ),
        (bool(app.secrets), "/secrets", "secrets are not supported"),
        (
            bool(app.readiness_checks),
            "/readinessChecks",
            "readiness checks are not supported; use healthChecks",
        ),
        (
            bool(app.accepted_resource_roles) and set(app.accepted_resource_roles or ()) != {"*"},
            "/acceptedResourceRoles",
            'reserved resources are not supported: leave it out or give ["*"]',
        ),
        (
            app.role not in (None, "", "*"),
            "/role",
            'resource roles are not supported: leave it out or give "*"',
        ),
        (
            app.ip_address is not None,
            "/ipAddress",
            "IP-per-task networking is not supported; use networks host or container/bridge",
        ),
        (app.check is not None, "/check", "Mesos checks are not supported; use healthChecks"),
        (
            app.resource_limits is not None,
            "/resourceLimits",
            "resource limits above the requested resources are not supported",
        ),
    ]
    return [(path, why) for bad, path, why in refused if bad] + _unreachable(
        app.unreachable_strategy
    )


def _unreachable(value: Any) -> list[Problem]:
    """An ``unreachableStrategy`` object is accepted and not kept: Corral replaces the tasks of
    a lost agent after the cluster's agent timeout. ``"disabled"`` (never replace) is refused."""
    if value == "disabled":
        return [
            (
                "/unreachableStrategy",
                '"disabled" is not supported: tasks of a lost agent are always replaced',
            )
        ]
    if value is None:
        return []
    try:
        UnreachableStrategy.model_validate(value)
    except ValidationError as e:
        return input_errors(e, "/unreachableStrategy").problems()
    return []
