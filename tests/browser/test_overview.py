"""The overview against what the API reports, and the agents page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from corral.spec.states import TaskState
from tests.browser.pages import open_live, shell_job
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration


def _quiet(api: Client) -> bool:
    """No task is unfinished, so the numbers hold still while the test reads them."""
    return all(t.state.terminal for t in api.tasks())


def test_the_overview_shows_the_numbers_the_api_reports(
    page: Page, api: Client, name: str, watcher: EventWatcher
) -> None:
    api.create_job(shell_job(f"{name}-ok", "true"))
    api.create_job(shell_job(f"{name}-bad", "exit 3"))
    watcher.wait_until(lambda: _quiet(api), 30, "every task to end")
    agents, tasks, jobs = api.agents(), api.tasks(), api.jobs()
    open_live(page, "/")

    connected = [a for a in agents if a.connected]
    for key in ("cpus", "gpus", "mem", "disk"):
        bar = page.locator(f'#overview-live [data-resource="{key}"]')
        used = sum(getattr(a.used, key) for a in connected)
        total = sum(getattr(a.total, key) for a in connected)
        expect(bar.locator("data[data-used]")).to_have_attribute("value", str(used))
        expect(bar.locator("data[data-total]")).to_have_attribute("value", str(total))
    for state in TaskState:
        count = sum(t.state is state for t in tasks)
        expect(page.locator(f'[data-task-state="{state}"] data')).to_have_text(str(count))
    for agent_state in {a.state for a in agents}:
        count = sum(a.state is agent_state for a in agents)
        expect(page.locator(f'[data-agent-state="{agent_state}"] data')).to_have_text(str(count))
    expect(page.locator("[data-total-jobs]")).to_have_text(str(len(jobs)))

    newest_failure = max(
        (t for t in tasks if t.state is TaskState.FAILED),
        key=lambda t: t.finished_at or t.created_at,
    )
    first_row = page.locator("#failures tbody tr").first
    expect(first_row).to_contain_text(newest_failure.id)
    expect(first_row).to_contain_text(newest_failure.reason)


def test_the_agents_page_drains_and_undrains_the_local_agent(page: Page, api: Client) -> None:
    [agent] = api.agents()
    open_live(page, "/ui/agents")
    card = page.locator(f'[data-agent="{agent.hostname}"]')
    expect(card.locator(".badge").first).to_have_text("ACTIVE")
    expect(card.locator('[data-resource="cpus"] data[data-total]')).to_have_attribute(
        "value", str(agent.total.cpus)
    )
    try:
        card.get_by_role("button", name="Drain", exact=True).click()
        expect(card.locator(".badge").first).to_have_text("DRAINING")
        assert api.agents()[0].state.value == "DRAINING"
        undrain = card.get_by_role("button", name="Undrain", exact=True)
        expect(undrain).to_be_enabled()
        undrain.click()
        expect(card.locator(".badge").first).to_have_text("ACTIVE")
    finally:
        api.drain_agent(agent.id, False)  # the other tests need the agent
    assert api.agents()[0].state.value == "ACTIVE"
