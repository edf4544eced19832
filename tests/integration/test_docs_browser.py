"""`/docs` in Debian's headless Chromium (driven by playwright, never a downloaded browser): the
TaskService operations are listed and "Try it out" runs ListTasks against the server
(docs/decisions.md P10). Runs only with `-m browser` (needs `apt-get install chromium`)."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from tests.integration.servers import Taskgate

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TASK = {
    "pipelineName": "pipeline/p",
    "runId": "run-1",
    "mlmdExecutionID": "7",
    "fingerprint": "seen-in-the-browser",
    "created_at": "2024-05-10T10:19:13Z",
}


@pytest.mark.browser
async def test_docs_lists_task_service_and_tries_list_tasks(taskgate: Taskgate) -> None:
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with taskgate.http.post(taskgate.tasks_url, json=TASK) as response:
        assert response.status == 200
    profile = tempfile.mkdtemp(prefix="taskgate-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            try:
                page = await context.new_page()
                await page.goto(taskgate.base_url + "/docs")
                operations = page.locator(".opblock")
                await operations.first.wait_for(timeout=30_000)
                summaries = await page.locator(".opblock-summary-path").all_inner_texts()
                assert "/apis/v1alpha1/tasks" in " ".join(summaries)
                tag = await page.locator(".opblock-tag").all_inner_texts()
                assert any("api.TaskService" in t for t in tag)
                listing = page.locator(".opblock.opblock-get").filter(has_text="ListTasks")
                await listing.locator(".opblock-summary").click()
                await listing.get_by_role("button", name="Try it out").click()
                await listing.get_by_role("button", name="Execute").click()
                code = listing.locator(
                    ".live-responses-table tr.response .response-col_status"
                ).first
                await code.wait_for(timeout=30_000)
                assert (await code.inner_text()).strip().startswith("200")
                body = listing.locator(".live-responses-table .microlight").first
                assert "seen-in-the-browser" in await body.inner_text()
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
