"""A job's page: run now, the dependency graph, and actions the API refuses."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from corral.client import Client
from tests.browser.pages import open_live, shell_job

pytestmark = pytest.mark.integration


def test_clicking_run_now_starts_a_new_run_that_appears_on_the_page(
    page: Page, api: Client, name: str
) -> None:
    api.create_job(shell_job(name, "echo hi"))
    open_live(page, f"/ui/jobs/{name}")
    expect(page.locator('[data-run="1"] .badge').first).to_have_text("SUCCEEDED")

    run_now = page.get_by_role("button", name=f"Run {name} now")
    run_now.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"Run #2 of {name} started")
    expect(page.locator('[data-run="2"] summary .badge')).to_have_text("SUCCEEDED")
    expect(page.locator("#job-head [data-runs]")).to_have_text("2")
    expect(run_now).to_be_focused()  # the live update kept the keyboard's place
    assert api.job(name).runs == 2


def test_the_dependency_graph_draws_the_edges_of_a_three_job_chain(
    page: Page, api: Client, name: str
) -> None:
    first, middle, last = f"{name}-a", f"{name}-b", f"{name}-c"
    api.create_job(shell_job(first, "true"))
    api.create_job(shell_job(middle, "true", parents=[first]))
    api.create_job(shell_job(last, "true", parents=[middle]))

    for job in (first, middle, last):  # each sees the whole chain, up and down
        open_live(page, f"/ui/jobs/{job}")
        graph = page.locator("svg#dag")
        expect(graph.locator("g.edge")).to_have_count(2)
        expect(
            graph.locator(f'g.edge[data-parent="{first}"][data-child="{middle}"]')
        ).to_have_count(1)
        expect(graph.locator(f'g.edge[data-parent="{middle}"][data-child="{last}"]')).to_have_count(
            1
        )
        expect(graph.locator("[data-node]")).to_have_count(3)
        expect(graph.locator(".node.current")).to_have_attribute("data-node", job)

    page.locator(f'svg#dag a[data-node="{first}"]').click()  # nodes link to their jobs
    expect(page.locator("h1")).to_have_text(first)


def test_a_refused_action_shows_the_apis_error_message(page: Page, api: Client, name: str) -> None:
    parent, child = f"{name}-parent", f"{name}-child"
    api.create_job(shell_job(parent, "true"))
    api.create_job(shell_job(child, "true", parents=[parent]))
    open_live(page, f"/ui/jobs/{parent}")

    page.get_by_role("button", name=f"Delete {parent}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Delete {parent}?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_have_attribute("data-kind", "error")
    expect(page.locator("#notice")).to_contain_text(f"job '{parent}' is a parent of {child}")
    assert api.job(parent).name == parent


def test_disabling_a_scheduled_job_applies_its_spec_with_disabled_set(
    page: Page, api: Client, name: str
) -> None:
    api.create_job(shell_job(name, "true", schedule="0 2 * * *"))
    open_live(page, "/ui/jobs")
    row = page.locator(f'#jobs tr[data-job="{name}"]')

    row.get_by_role("button", name=f"Disable {name}").click()
    expect(row.locator(".s-disabled")).to_have_text("disabled")
    expect(row.get_by_role("button", name=f"Enable {name}")).to_be_visible()
    assert api.job(name).spec.disabled and api.job(name).runs == 0

    row.get_by_role("button", name=f"Enable {name}").click()
    expect(row.locator(".s-disabled")).to_have_count(0)
    assert not api.job(name).spec.disabled
