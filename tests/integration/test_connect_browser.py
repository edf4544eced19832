"""A page in Debian's headless Chromium (driven by playwright, never a downloaded browser) calls
ListTasks over Connect JSON with `fetch`, cross-origin: the page comes from one origin and
`taskgate serve --cors-origin` that origin answers from another, so the preflight and the
exposed headers are exercised as a real browser does them (docs/decisions.md T86). Runs only
with `-m browser` (needs `apt-get install chromium`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from taskgate.server.lifecycle import serving
from tests.integration.servers import serve_settings
from tests.integration.test_docs_browser import CHROMIUM, FLAGS

TASK = {
    "pipelineName": "pipeline/p",
    "runId": "run-browser",
    "mlmdExecutionID": "7",
    "fingerprint": "seen-over-connect",
    "created_at": "2024-05-10T10:19:13Z",
}
PAGE = b"<!doctype html><title>connect</title><p>calls taskgate</p>"
#: What the page runs: ListTasks over Connect JSON, and what a browser lets it read.
CALL = """async (url) => {
  const response = await fetch(url + "/api.TaskService/ListTasks", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "Connect-Protocol-Version": "1",
      "Connect-Timeout-Ms": "10000",
    },
    body: JSON.stringify({pageSize: 10}),
  });
  return {
    status: response.status,
    requestId: response.headers.get("X-Request-Id"),
    body: await response.json(),
  };
}"""


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A second origin that serves the page."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def call_from_page(page_url: str, taskgate_url: str) -> Any:
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="taskgate-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            try:
                page = await context.new_page()
                await page.goto(page_url)
                try:
                    return await page.evaluate(CALL, taskgate_url)
                except Exception as error:  # the browser refused: CORS
                    return {"refused": str(error)}
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
async def test_page_lists_tasks_over_connect_cross_origin(
    database_url: str, pool: asyncpg.Pool, page_origin: str
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    settings = dataclasses.replace(serve_settings(database_url), cors_origins=(page_origin,))
    async with serving(settings) as running, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{running.http_port}"
        async with http.post(f"{base}/apis/v1alpha1/tasks", json=TASK) as response:
            assert response.status == 200
        result = await call_from_page(page_origin + "/", base)
    assert result["status"] == 200, json.dumps(result)
    assert result["requestId"]  # an exposed header the page may read
    assert [t["fingerprint"] for t in result["body"]["tasks"]] == ["seen-over-connect"]


@pytest.mark.browser
async def test_page_of_an_unlisted_origin_is_refused(
    database_url: str, pool: asyncpg.Pool, page_origin: str
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    settings = dataclasses.replace(
        serve_settings(database_url), cors_origins=("https://elsewhere.example",)
    )
    async with serving(settings) as running:
        result = await call_from_page(page_origin + "/", f"http://127.0.0.1:{running.http_port}")
    assert "refused" in result, json.dumps(result)
