"""Error details of types the upstream's routes never mention are rendered as JSON
(docs/decisions.md T74): a real `taskgate gateway --preset kfp` process in front of
`taskgate serve` answers an invalid CreateTask with the `api.Error` detail exactly as serve's
own REST door does. task.proto does not import api/error.proto, so discovery never fetched it;
the gateway asks reflection for it when the first such error arrives. The gateway must run in
a process of its own: in this one the default pool already knows `api.Error`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import aiohttp

from tests.integration.servers import Taskgate
from tests.upstream_process import free_port

INVALID = json.dumps({"id": "x", "pipelineName": "p"})


async def create(http: aiohttp.ClientSession, base: str, body: str) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{base}/apis/v1alpha1/tasks", data=body, headers=headers) as r:
        return r.status, json.loads(await r.text())


async def test_kfp_error_details_render_as_json_through_the_gateway(taskgate: Taskgate) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskgate",
        "gateway",
        "--preset",
        "kfp",
        "--upstream",
        taskgate.grpc_target,
        "--http-address",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        gateway = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                async with taskgate.http.get(f"{gateway}/healthz") as ready:
                    if ready.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            assert process.returncode is None, "the gateway exited"
            assert time.monotonic() < deadline, "the gateway did not become ready"
            await asyncio.sleep(0.2)
        direct = await create(taskgate.http, taskgate.base_url, INVALID)
        for _ in range(2):  # the second from the pool, without asking again
            via_gateway = await create(taskgate.http, gateway, INVALID)
            assert via_gateway == direct
        status, body = direct
        assert status == 400
        (detail,) = body["details"]
        assert detail["@type"] == "type.googleapis.com/api.Error"
        assert set(detail) == {"@type", "error_message", "error_details"}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 15)
