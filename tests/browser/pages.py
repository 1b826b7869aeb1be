"""What the browser tests share: opening a page and waiting for its live stream, screenshots,
and small job specs."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from corral.spec.jobs import JobSpec, TaskTemplate
from tests.support.cluster import REPO, shell_wait_for

SCREENSHOTS = REPO / "test-output" / "screenshots"
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}


def open_live(page: Page, path: str) -> None:
    """Go to ``path`` and wait until the page follows the cluster's events."""
    page.goto(path)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")


def screenshot(page: Page, name: str) -> list[Path]:
    """Full-page screenshots of the current page at desktop and phone width."""
    saved = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": height})
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    page.set_viewport_size({"width": WIDTHS["desktop"][0], "height": WIDTHS["desktop"][1]})
    return saved


def shell_job(name: str, shell: str, **fields: object) -> JobSpec:
    """A small job running ``shell`` (0.1 cpu, 32 MiB)."""
    task = TaskTemplate(shell=shell, cpus=0.1, mem=32)
    return JobSpec.model_validate({"name": name, "task": task, **fields})


wait_for_file = shell_wait_for  # the browser tests' name for it
