"""What the browser tests share: opening a page and waiting for its live stream, screenshots,
and small job and service specs."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from corral.spec.jobs import JobSpec, TaskTemplate
from corral.spec.services import ServiceSpec
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


def web_service(service_id: str, instances: int = 1, checked: bool = True) -> ServiceSpec:
    """``instances`` tasks of http.server on their PORT0 (0.1 cpu, 32 MiB), checked over HTTP
    every second unless ``checked`` is False."""
    checks = [{"protocol": "HTTP", "grace_period": 30, "interval": 1, "timeout": 1, "delay": 0}]
    return ServiceSpec.model_validate(
        {
            "id": service_id,
            "instances": instances,
            "task": {"shell": "exec python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32},
            "ports": [{"port": 0}],
            "health_checks": checks if checked else [],
        }
    )


def stuck_service(service_id: str) -> ServiceSpec:
    """A service whose first deployment never ends: its task serves nothing, so its HTTP
    check never passes, and the long grace period keeps the task alive regardless."""
    spec = web_service(service_id)
    check = spec.health_checks[0].model_copy(update={"grace_period": 3600.0})
    task = spec.task.model_copy(update={"shell": "exec sleep 3600"})
    return spec.model_copy(update={"task": task, "health_checks": [check]})
