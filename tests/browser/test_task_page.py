"""A task's page: reached by clicking through, with its history and a live tail of stdout."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from tests.browser.pages import open_live, shell_job, wait_for_file
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration


def test_opening_a_task_shows_its_stdout_and_tails_new_lines(
    page: Page, api: Client, name: str, gate: Path
) -> None:
    api.create_job(shell_job(name, f"echo 'first line'; {wait_for_file(gate)}; echo 'second line'"))
    open_live(page, "/ui/jobs")
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("link", name=f"{name}.1.0.0").click()

    expect(page.locator("h1")).to_have_text(f"{name}.1.0.0")
    stdout = page.locator("pre#stdout")
    expect(stdout).to_have_text("first line\n")
    gate.touch()
    expect(stdout).to_have_text("first line\nsecond line\n")
    expect(page.locator("[data-task-state]")).to_have_attribute("data-task-state", "FINISHED")
    expect(page.locator("[data-exit-code]")).to_have_text("0")
    for state in ("PENDING", "RUNNING", "FINISHED"):
        expect(page.locator(f'#history tr[data-state="{state}"]')).to_have_count(1)
    expect(page.locator('[data-log-status="stdout"]')).to_contain_text("complete")


def test_the_task_page_lists_the_sandbox_files_and_opens_one(
    page: Page, api: Client, name: str, watcher: EventWatcher
) -> None:
    api.create_job(shell_job(name, "echo 42 > answer.txt"))
    watcher.wait_until(lambda: api.run(name, 1).state.terminal, 30, f"{name} to end")
    open_live(page, f"/ui/tasks/{name}.1.0.0")
    link = page.locator("#files").get_by_role("link", name="answer.txt")
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("body")).to_have_text("42")
