"""The services list, a service's page and the deployments page: live counts, scaling,
tasks with their health, killing, deleting and rolling back, each through the native API."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from corral.client import ApiError, Client
from corral.spec.views import TaskView
from tests.browser.pages import open_live, stuck_service, web_service
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # seconds for the cluster to get where a test waits for it


def running_tasks(api: Client, service_id: str, n: int) -> list[TaskView] | None:
    """The service's tasks once exactly ``n`` run and no other is live, else None."""
    tasks = api.service_tasks(service_id)
    return tasks if len(tasks) == n and all(t.state == "RUNNING" for t in tasks) else None


def test_a_service_created_through_the_api_appears_with_its_running_count_without_a_reload(
    page: Page, api: Client, service_id: str
) -> None:
    open_live(page, "/ui/services")
    page.evaluate("window.stillTheSamePage = true")

    api.create_service(web_service(service_id))
    row = page.locator(f'#services tr[data-service="{service_id}"]')
    expect(row.locator("[data-wanted]")).to_have_text("1")
    expect(row.locator("[data-running]")).to_have_text("1")
    expect(row.locator("[data-healthy]")).to_have_text("1")
    expect(row.locator("[data-service-status]")).to_have_text("healthy")
    assert page.evaluate("window.stillTheSamePage") is True


def test_scaling_from_the_list_changes_the_instances_and_the_running_count_follows(
    page: Page, api: Client, service_id: str
) -> None:
    api.create_service(web_service(service_id, checked=False))
    open_live(page, "/ui/services")
    row = page.locator(f'#services tr[data-service="{service_id}"]')
    expect(row.locator("[data-running]")).to_have_text("1")

    row.get_by_role("button", name=f"Scale {service_id}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Scale {service_id}")
    number = dialog.get_by_role("spinbutton", name="Instances")
    expect(number).to_have_value("1")
    number.fill("3")
    dialog.get_by_role("button", name="OK").click()

    expect(page.locator("#notice")).to_contain_text(f"{service_id}: scaling to 3")
    expect(row.locator("[data-wanted]")).to_have_text("3")
    expect(row.locator("[data-running]")).to_have_text("3")
    assert api.service(service_id).spec.instances == 3


def test_the_service_page_shows_each_task_with_its_host_port_and_health(
    page: Page, api: Client, service_id: str, watcher: EventWatcher
) -> None:
    api.create_service(web_service(service_id, instances=2))
    open_live(page, f"/ui/services{service_id}")
    rows = page.locator("#service-tasks tbody tr")
    expect(rows.locator('[data-health="healthy"]')).to_have_count(2)

    tasks = watcher.wait_until(lambda: running_tasks(api, service_id, 2), DEADLINE, "2 tasks")
    [agent] = api.agents()
    for task in tasks:
        row = page.locator(f'#service-tasks tr[data-task="{task.id}"]')
        expect(row.locator("[data-host]")).to_have_text(agent.hostname)
        [port] = task.ports
        expect(row.locator("[data-ports]")).to_have_text(str(port))
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    expect(page.locator("#service-head [data-healthy]")).to_have_text("2")
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    expect(page.locator(".deployment .badge").first).to_have_text("SUCCEEDED")

    page.get_by_role("link", name=tasks[0].id).click()  # a task's page sits under Services
    expect(page.locator("h1")).to_have_text(tasks[0].id)
    expect(page.locator(".crumbs")).to_contain_text(service_id)
    expect(page.locator("[data-health] .badge")).to_have_text("healthy")


def test_killing_a_task_from_the_service_page_replaces_it(
    page: Page, api: Client, service_id: str, watcher: EventWatcher
) -> None:
    api.create_service(web_service(service_id, checked=False))
    [old] = watcher.wait_until(lambda: running_tasks(api, service_id, 1), DEADLINE, "the task")
    open_live(page, f"/ui/services{service_id}")

    page.get_by_role("button", name=f"Kill task {old.id}", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("a new task of")
    dialog.get_by_role("button", name="Kill").click()

    expect(page.locator(f'#service-tasks tr[data-task="{old.id}"]')).to_have_count(0)
    expect(page.locator('#service-tasks tr[data-state="RUNNING"]')).to_have_count(1)
    [new] = watcher.wait_until(lambda: running_tasks(api, service_id, 1), DEADLINE, "a new task")
    assert new.id != old.id and api.service(service_id).spec.instances == 1


def test_deleting_a_service_asks_for_confirmation_first(
    page: Page, api: Client, service_id: str
) -> None:
    api.create_service(web_service(service_id, checked=False))
    open_live(page, "/ui/services")
    row = page.locator(f'#services tr[data-service="{service_id}"]')
    delete = row.get_by_role("button", name=f"Delete {service_id}")

    delete.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Delete {service_id}?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert api.service(service_id).id == service_id  # nothing was sent

    delete.click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#notice")).to_contain_text(f"{service_id}: deleting")
    expect(row).to_have_count(0)
    with pytest.raises(ApiError) as caught:
        api.service(service_id)
    assert caught.value.status == 404


def test_a_deployment_that_cannot_end_is_rolled_back_from_the_deployments_page(
    page: Page, api: Client, service_id: str
) -> None:
    deployment = api.create_service(stuck_service(service_id))
    open_live(page, "/ui/deployments")
    card = page.locator(f'#running-live [data-deployment="{deployment.id}"]')
    expect(card.locator('[data-step-state="current"]')).to_contain_text(service_id)

    card.get_by_role("button", name=f"Roll back deployment {deployment.id}").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator("#notice")).to_contain_text("Rolling back with deployment")
    expect(card).to_have_count(0)
    expect(page.locator(f'#ended-live [data-deployment="{deployment.id}"]')).to_contain_text(
        "rolled back"
    )
    with pytest.raises(ApiError):  # the rollback of a new service removes it
        api.service(service_id)


def test_a_change_refused_while_a_deployment_runs_can_be_forced_from_the_page(
    page: Page, api: Client, service_id: str
) -> None:
    deployment = api.create_service(stuck_service(service_id))
    open_live(page, f"/ui/services{service_id}")
    expect(page.locator(f'[data-deployment="{deployment.id}"] .badge')).to_have_text("RUNNING")

    page.get_by_role("button", name=f"Restart {service_id}").click()
    page.get_by_role("dialog").get_by_role("button", name="Restart").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(deployment.id)  # the API's 409 names what holds it
    dialog.get_by_role("button", name="Force").click()

    expect(page.locator("#notice")).to_contain_text(f"{service_id}: restarting")
    expect(page.locator(f'[data-deployment="{deployment.id}"] .badge')).to_have_text("CANCELLED")
    assert api.deployment(deployment.id).state == "CANCELLED"


def test_the_overview_counts_the_services_and_the_fully_healthy_ones(
    page: Page, api: Client, service_id: str, watcher: EventWatcher
) -> None:
    api.create_service(web_service(service_id))

    def healthy() -> bool:
        return api.service(service_id).counts.healthy == 1

    watcher.wait_until(healthy, DEADLINE, f"{service_id} healthy")
    open_live(page, "/")
    services = api.services()
    expect(page.locator("[data-total-services]")).to_have_text(str(len(services)))
    ready = [
        s
        for s in services
        if (s.counts.healthy if s.spec.health_checks else s.counts.running) >= s.spec.instances
        and not s.counts.unhealthy
    ]
    expect(page.locator("[data-healthy-services]")).to_have_text(str(len(ready)))
    page.get_by_role("link", name="Services", exact=True).first.click()
    expect(page.locator("h1")).to_have_text("Services")


def test_an_unknown_service_gets_a_not_found_page_that_leads_back_to_the_list(
    page: Page, name: str
) -> None:
    response = page.goto(f"/ui/services/{name}/nope")
    assert response is not None and response.status == 404
    expect(page.locator(".card.empty")).to_contain_text(f"service '/{name}/nope' not found")
    page.get_by_role("link", name="Back to the services").click()
    expect(page.locator("h1")).to_have_text("Services")
