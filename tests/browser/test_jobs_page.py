"""The jobs list: live changes without a reload, and searching."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from tests.browser.pages import open_live, shell_job, wait_for_file

pytestmark = pytest.mark.integration


def test_a_job_submitted_through_the_api_appears_and_changes_state_without_a_reload(
    page: Page, api: Client, name: str, gate: Path
) -> None:
    open_live(page, "/ui/jobs")
    page.evaluate("window.stillTheSamePage = true")

    api.create_job(shell_job(name, f"echo started; {wait_for_file(gate)}; echo done"))
    row = page.locator(f'#jobs tr[data-job="{name}"]')
    expect(row.locator("[data-status]")).to_have_text("running")
    expect(row.locator("[data-result]")).to_have_attribute("data-result", "")

    gate.touch()
    expect(row.locator("[data-status]")).to_have_text("idle")
    expect(row.locator("[data-result]")).to_have_text("success")
    assert page.evaluate("window.stillTheSamePage") is True


def test_searching_by_name_or_owner_and_filtering_by_state_narrow_the_list(
    page: Page, api: Client, name: str
) -> None:
    for suffix in ("alpha", "beta"):
        api.create_job(shell_job(f"{name}-{suffix}", "true"))
    open_live(page, "/ui/jobs")
    rows = page.locator("#jobs tbody tr")

    page.get_by_role("searchbox", name="Search").fill(name)
    expect(rows).to_have_count(2)
    page.get_by_role("searchbox", name="Search").fill(f"{name}-alp")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job", f"{name}-alpha")
    assert "q=" in page.url  # the search stays in the address, for reload and sharing

    page.get_by_role("searchbox", name="Search").fill(name)
    expect(rows.locator('[data-status="idle"]')).to_have_count(2)
    page.get_by_role("combobox", name="State").select_option("running")
    expect(page.get_by_text("No job matches the search.")).to_be_visible()
    page.get_by_role("combobox", name="State").select_option("idle")
    expect(rows).to_have_count(2)

    page.get_by_role("searchbox", name="Search").fill("admin")  # the owner
    expect(rows.filter(has_text=f"{name}-beta")).to_have_count(1)
