"""Two people sign in with their own tokens and each sees their own work first."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from corral.client import Client
from corral.spec.accounts import UserSpec
from tests.browser.conftest import DESKTOP
from tests.browser.pages import open_live, shell_job
from tests.cli.harness import Server

pytestmark = pytest.mark.integration


@pytest.fixture
def people(api: Client) -> dict[str, str]:
    """Two new users, by name, with a token each."""
    tokens = {}
    for who in ("ann", "ben"):
        name = f"{who}-{secrets.token_hex(2)}"
        api.accounts.add_user(UserSpec(name=name))
        tokens[name] = api.accounts.create_token(user=name, name="browser test").token
    return tokens


@pytest.fixture
def contexts(browser: Browser, server: Server) -> Iterator[list[BrowserContext]]:
    """Two browser profiles that have not signed in."""
    opened = [browser.new_context(viewport=DESKTOP, base_url=server.url) for _ in range(2)]
    yield opened
    for context in opened:
        context.close()


def sign_in(context: BrowserContext, token: str) -> Page:
    """Sign in through the login page, as a person does."""
    page = context.new_page()
    page.goto("/ui/jobs")
    expect(page).to_have_url("/ui/login?next=/ui/jobs")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    return page


def test_two_people_sign_in_and_each_sees_their_own_jobs_first(
    server: Server, people: dict[str, str], contexts: list[BrowserContext], name: str
) -> None:
    jobs = {}
    for who, token in people.items():
        with Client(server.url, token) as client:
            jobs[who] = client.create_job(shell_job(f"{name}-{who[:3]}", "true")).name
    (ann, ann_token), (ben, ben_token) = people.items()
    pages = {ann: sign_in(contexts[0], ann_token), ben: sign_in(contexts[1], ben_token)}
    for who, page in pages.items():
        other = ben if who == ann else ann
        open_live(page, "/ui/jobs")
        expect(page.locator(".session .user")).to_contain_text(who)
        rows = page.locator("#jobs tbody tr")
        expect(rows.filter(has_text=jobs[who])).to_have_count(1)
        expect(rows.filter(has_text=jobs[other])).to_have_count(0)
        # Their own job offers its actions; everyone's list shows the other's without them.
        expect(rows.filter(has_text=jobs[who]).get_by_role("button", name="Kill")).to_be_visible()
        page.get_by_role("combobox", name="Whose").select_option("all")
        expect(rows.filter(has_text=jobs[other])).to_have_count(1)
        expect(rows.filter(has_text=jobs[other]).get_by_role("button")).to_have_count(0)
        assert "who=all" in page.url
