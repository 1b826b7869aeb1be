"""Fixtures of the browser tests: a real ``corral up``, Debian's Chromium driven by Playwright,
browser pages signed in with the cluster's admin token, and a client of the native API.

Without Chromium or Playwright the whole directory is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from corral.client import ApiError, Client
from tests.cli.harness import Server, corral_up
from tests.support.cluster import EventWatcher

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000  # the longest any expectation on a page waits
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (it is in the `test` extra)"
    if not CHROMIUM.exists():
        return f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


if (_why := _missing()) is not None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"browser tests cannot run in CI: {_why}")
    pytest.skip(f"browser tests need chromium and playwright: {_why}", allow_module_level=True)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``corral up`` for the whole session; tests keep apart by unique job names."""
    with corral_up(tmp_path_factory.mktemp("corral")) as running:
        yield running


@pytest.fixture(scope="package")
def watcher(server: Server) -> Iterator[EventWatcher]:
    """Follows the cluster's events, to wait for states the pages are not asked about."""
    w = EventWatcher(server.url, server.token)
    yield w
    w.close()


@pytest.fixture
def api(server: Server) -> Iterator[Client]:
    """A client of the native API, as the admin."""
    with Client(server.url, server.token) as client:
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole session."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def anonymous(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    """A fresh browser profile at desktop width that has not signed in."""
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def page(anonymous: BrowserContext, server: Server) -> Iterator[Page]:
    """A browser page signed in with the admin token (the cookie the login page sets).
    Fails the test if a script on any page it showed threw an error."""
    anonymous.add_cookies([{"name": "corral_token", "value": server.token, "url": server.url}])
    tab = anonymous.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"scripts on the page failed: {errors}"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file that tasks wait for (``pages.wait_for_file``). The test creates it to let them
    go on; at the latest it is created when the test ends, so that no task waits forever."""
    path = tmp_path / "go"
    yield path
    path.touch()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A job name prefix no other test uses."""
    return f"b-{request.node.name[5:25].strip('_').replace('_', '-')}-{secrets.token_hex(2)}"


@pytest.fixture
def service_id(name: str, api: Client) -> Iterator[str]:
    """A service id no other test uses. The service is deleted when the test ends, so that its
    tasks do not hold the agent's CPUs for the tests after it."""
    sid = f"/b/{name}"
    yield sid
    try:
        api.delete_service(sid, force=True)
    except ApiError as e:
        if e.status != 404:
            raise
