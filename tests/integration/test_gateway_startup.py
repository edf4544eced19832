"""`taskgate gateway` started before its upstream (docs/decisions.md T73): it listens at once,
answers 503 UNAVAILABLE naming the upstream, keeps discovering, and serves once the upstream is
up. Only a definite configuration error ends it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from taskgate.gateway.standalone import (
    GatewayStartupError,
    StandaloneConfig,
    gateway_serving,
)
from tests.integration.test_gateway_cancel import library_upstream
from tests.upstream_process import free_port

UNAVAILABLE = 14
BOOK = "/v1/shelves/1/books/2"
#: The gateway retries at most every 10 s (MAX_RETRY_SECONDS); allow a little more.
READY_WITHIN = 15.0


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def ready_within(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (await get(f"{url}/healthz"))[0] != 200:
        assert time.monotonic() < deadline, "the gateway did not become ready"
        await asyncio.sleep(0.1)


async def assert_waiting(url: str, target: str) -> None:
    for path in ("/healthz", BOOK, "/no/such/route"):
        status, body = await get(f"{url}{path}")
        assert status == 503, path
        assert body["code"] == UNAVAILABLE
        assert body["message"].startswith(f"upstream {target} is not ready: cannot reach")
    assert (await get(f"{url}/livez"))[0] == 200
    # Answered by the app like any error: observed, with a request id (T73, P11).
    async with aiohttp.ClientSession() as http, http.get(f"{url}{BOOK}") as response:
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-Request-Id"]


async def test_waits_for_the_upstream_then_serves() -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    config = StandaloneConfig(upstream=target, port=0, wait_for_upstream=True)
    async with gateway_serving(config) as running:
        url = f"http://127.0.0.1:{running.port}"
        assert not running.ready
        await assert_waiting(url, target)
        async with library_upstream(port=port):
            await ready_within(url, READY_WITHIN)
            assert len(running.routes.routes) > 1  # the discovered ones
            assert await get(f"{url}{BOOK}") == (200, {"name": "shelves/1/books/2"})


async def test_an_upstream_without_reflection_ends_the_wait() -> None:
    port = free_port()
    config = StandaloneConfig(upstream=f"127.0.0.1:{port}", port=0, wait_for_upstream=True)
    async with gateway_serving(config) as running:
        server = grpc.aio.server()  # serves nothing, reflection neither: waiting will not help
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            with pytest.raises(GatewayStartupError, match="does not serve gRPC server reflection"):
                await asyncio.wait_for(running.stopped(asyncio.Event()), READY_WITHIN)
        finally:
            await server.stop(None)


async def test_a_bad_descriptor_set_still_fails_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.binpb"
    bad.write_bytes(b"\xff\xff not a descriptor set")
    config = StandaloneConfig(
        upstream=f"127.0.0.1:{free_port()}", port=0, descriptor_set=bad, wait_for_upstream=True
    )
    with pytest.raises(GatewayStartupError, match="is not a serialized FileDescriptorSet"):
        async with gateway_serving(config):
            pass


@asynccontextmanager
async def gateway_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`taskgate gateway ARGS` as a child process, stopped by its PID on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskgate",
        "gateway",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_the_command_starts_before_its_upstream() -> None:
    upstream_port, http_port = free_port(), free_port()
    target = f"127.0.0.1:{upstream_port}"
    url = f"http://127.0.0.1:{http_port}"
    async with gateway_process(
        "--upstream", target, "--http-address", f"127.0.0.1:{http_port}"
    ) as (process):
        deadline = time.monotonic() + 20
        while True:  # listening, not exited
            assert process.returncode is None, "the gateway exited instead of waiting"
            try:
                await assert_waiting(url, target)
                break
            except aiohttp.ClientConnectionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        async with library_upstream(port=upstream_port):
            await ready_within(url, READY_WITHIN)
            assert await get(f"{url}{BOOK}") == (200, {"name": "shelves/1/books/2"})
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
