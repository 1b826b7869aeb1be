"""A full-page screenshot of every page at desktop and phone width, saved under
test-output/screenshots/ for people to look at: taken while a sweep is half done, and while
services run, one healthy, one deploying and one failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from corral.spec.jobs import TaskTemplate
from tests.browser.pages import (
    SCREENSHOTS,
    open_live,
    screenshot,
    shell_job,
    stuck_service,
    wait_for_file,
    web_service,
)
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration


def test_every_page_is_captured_at_desktop_and_phone_width(
    page: Page, api: Client, name: str, gate: Path
) -> None:
    tag = name[-4:]  # short names read better in the pictures
    sweep, prepare, simulate, analyse = (f"{s}-{tag}" for s in ("sweep", "prep", "sim", "ana"))
    hold = wait_for_file(gate)
    # Half of the sweep ends at once, the other half runs until the pictures are taken.
    api.create_job(
        shell_job(
            sweep,
            f"echo simulating sim_{{index}}.mac; [ {{index}} -lt 6 ] || {{ {hold}; }}",
            array="0-11",
            description="Geant4 macros, one task each",
        )
    )
    api.create_job(shell_job(f"fail-{tag}", "echo 'bad input' >&2; exit 3"))
    # The chain's head waits too, so that its children exist when it succeeds.
    api.create_job(shell_job(prepare, f"{hold}; echo prepared"))
    api.create_job(shell_job(simulate, "echo simulated", parents=[prepare]))
    api.create_job(shell_job(analyse, "echo analysed", parents=[simulate]))
    api.create_job(shell_job(f"nightly-{tag}", "echo backup", schedule="0 2 * * *"))

    open_live(page, "/ui/jobs")
    row = page.locator(f'#jobs tr[data-job="{sweep}"]')
    expect(row.locator("[data-done]")).to_have_text("6")
    expect(row.locator("[data-running]")).to_have_text("6")
    screenshot(page, "jobs")
    open_live(page, "/")
    screenshot(page, "overview")
    open_live(page, "/ui/agents")
    screenshot(page, "agents")
    open_live(page, f"/ui/jobs/{sweep}")
    screenshot(page, "job-sweep")
    open_live(page, f"/ui/tasks/{sweep}.1.7.0")
    expect(page.locator("pre#stdout")).to_have_text("simulating sim_7.mac\n")
    screenshot(page, "task")

    gate.touch()
    open_live(page, f"/ui/jobs/{simulate}")
    expect(page.locator('[data-run="1"] summary .badge')).to_have_text("SUCCEEDED")
    screenshot(page, "job-chain")
    open_live(page, "/ui/usage")
    expect(page.locator('#usage tr[data-name="admin"]')).to_be_visible()
    screenshot(page, "usage")
    open_live(page, "/ui/share")
    expect(page.locator('#share tr[data-name="admin"]')).to_be_visible()
    screenshot(page, "share")
    page.goto("/ui/login")  # shown even when signed in
    screenshot(page, "login")

    for shot in (
        "overview",
        "agents",
        "jobs",
        "job-sweep",
        "job-chain",
        "task",
        "usage",
        "share",
        "login",
    ):
        for width in (1280, 390):
            assert (SCREENSHOTS / f"{shot}-{width}.png").stat().st_size > 10_000


def test_the_service_pages_are_captured_at_desktop_and_phone_width(
    page: Page, api: Client, service_id: str, watcher: EventWatcher
) -> None:
    web, stuck, broken = service_id, f"{service_id}-db", f"{service_id}-cron"
    api.create_service(web_service(web, instances=3))
    api.create_service(stuck_service(stuck))
    failing = web_service(broken, checked=False).model_copy(
        update={"task": TaskTemplate(shell="echo 'no config' >&2; exit 2", cpus=0.1, mem=32)}
    )
    api.create_service(failing)
    try:
        watcher.wait_until(
            lambda: api.service(web).counts.healthy == 3 and api.service(broken).last_failure,
            60,
            f"{web} healthy and {broken} failed",
        )
        open_live(page, "/ui/services")
        expect(page.locator(f'#services tr[data-service="{web}"] [data-healthy]')).to_have_text("3")
        screenshot(page, "services")
        open_live(page, f"/ui/services{web}")
        expect(page.locator('#service-tasks [data-health="healthy"]')).to_have_count(3)
        screenshot(page, "service")
        open_live(page, "/ui/deployments")
        expect(page.locator("#running-live [data-deployment]")).not_to_have_count(0)
        screenshot(page, "deployments")
        open_live(page, "/")
        screenshot(page, "overview-services")
    finally:
        for other in (stuck, broken):
            api.delete_service(other, force=True)

    for shot in ("services", "service", "deployments", "overview-services"):
        for width in (1280, 390):
            assert (SCREENSHOTS / f"{shot}-{width}.png").stat().st_size > 10_000
