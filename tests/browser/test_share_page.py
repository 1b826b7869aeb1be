"""The fair-share page: each user's weight, quota and work, next in line first, updated live
as tasks start and end."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from corral.spec.accounts import UserChange
from tests.browser.pages import open_live, shell_job, wait_for_file

pytestmark = pytest.mark.integration


def test_the_share_page_shows_weights_quotas_and_work_and_follows_it_live(
    page: Page, api: Client, name: str, gate: Path
) -> None:
    api.accounts.change_user("admin", UserChange(weight=2, quota_tasks=500))
    try:
        api.create_job(shell_job(name, f"{wait_for_file(gate)}; sleep 0.2"))
        open_live(page, "/ui/share")
        page.evaluate("window.stillTheSamePage = true")
        expect(page.get_by_role("link", name="Share")).to_have_attribute("aria-current", "page")
        admin = page.locator('#share tbody tr[data-name="admin"]')
        expect(admin.locator("[data-weight]")).to_have_text("2")
        expect(admin.locator("[data-quota]")).to_have_text("500 tasks")
        expect(admin.locator("[data-running]")).not_to_have_text("0")  # its task holds a place
        shown = api.accounts.share()
        assert [u.user for u in shown.users] == [
            u.get_attribute("data-name") for u in page.locator("#share tbody tr").all()
        ]

        gate.touch()
        expect(admin.locator("[data-running]")).to_have_text("0")
        expect(admin.locator("[data-cpu-hours]")).not_to_have_attribute("data-cpu-hours", "0.0")
        assert page.evaluate("window.stillTheSamePage") is True
    finally:
        api.accounts.change_user("admin", UserChange(weight=None, quota_tasks=None))
