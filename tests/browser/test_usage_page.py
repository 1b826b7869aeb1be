"""The usage page: each user's figures for a window, updated live as tasks end, per user or
per group."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from tests.browser.pages import open_live, shell_job, wait_for_file

pytestmark = pytest.mark.integration


def test_a_task_ending_shows_in_its_owners_usage_without_a_reload_and_by_group(
    page: Page, api: Client, name: str, gate: Path
) -> None:
    api.create_job(shell_job(name, f"{wait_for_file(gate)}; sleep 0.2"))
    open_live(page, "/ui/usage")
    page.evaluate("window.stillTheSamePage = true")
    expect(page.get_by_role("link", name="Usage")).to_have_attribute("aria-current", "page")
    admin = page.locator('#usage tbody tr[data-name="admin"]')
    expect(admin).to_be_visible()  # its task runs: its time counts already
    finished = int(admin.locator('[data-outcome="finished"]').inner_text())

    gate.touch()
    page.wait_for_function(
        """n => Number(document.querySelector(
            '#usage tr[data-name="admin"] [data-outcome="finished"]').textContent) > n""",
        arg=finished,
    )
    assert page.evaluate("window.stillTheSamePage") is True
    cell = admin.locator("[data-cpu-hours]")
    shown = float(cell.get_attribute("data-cpu-hours") or "nan")
    assert 0 < shown <= next(r.cpu_hours for r in api.usage().rows if r.name == "admin")
    assert cell.inner_text() in ("< 0.001", f"{shown:,.3f}")

    group = api.accounts.user("admin").group
    page.get_by_role("combobox", name="By").select_option("group")
    expect(page.locator(f'#usage tbody tr[data-name="{group}"]')).to_be_visible()
    expect(page.locator("#usage thead th").first).to_have_text("Group")
    expect(page).to_have_url(re.compile(r"by=group"))
    since = page.locator("#usage-window time").first
    day_ago = since.get_attribute("datetime")
    page.get_by_role("combobox", name="Window").select_option("1h")
    expect(since).not_to_have_attribute("datetime", day_ago or "")
    expect(page.locator(f'#usage tbody tr[data-name="{group}"]')).to_be_visible()
    expect(page).to_have_url(re.compile(r"window=1h"))
