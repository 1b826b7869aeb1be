"""Signing in with a token when the cluster requires one."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.cli.harness import Server

pytestmark = pytest.mark.integration


def test_pages_ask_for_a_token_and_accept_only_a_valid_one(
    anonymous: BrowserContext, server: Server
) -> None:
    page = anonymous.new_page()
    page.goto("/ui/jobs?q=x")
    expect(page).to_have_url(f"{server.url}/ui/login?next=/ui/jobs%3Fq%3Dx")

    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid on this cluster.")

    page.get_by_label("Access token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/ui/jobs?q=x")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")  # events accepted it

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/ui/login?next=/")
