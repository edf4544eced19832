"""The hostile-input corpus (corpus.py) through every door: `taskgate serve`'s REST door,
`taskgate gateway --preset kfp` in front of serve's gRPC port, and serve's gRPC door.

Every case gets its expected status, and none a 5xx other than 503/504 (which only an upstream's
fault may cause)."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import grpc
import pytest

from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.hostile.corpus import CASES, GRPC_CASES, Case
from tests.integration.servers import Taskgate

pytestmark = pytest.mark.timeout(300)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) + len(GRPC_CASES) >= 250
    assert len(CASES) >= 250


async def _raw(port: int, data: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            line = await reader.readline()
        return int(line.split()[1])
    finally:
        writer.close()


async def _status(http: aiohttp.ClientSession, base: str, port: int, case: Case) -> int:
    if case.raw is not None:
        return await _raw(port, case.raw)
    # skip_auto_headers: the client must not add a Content-Type of its own.
    data = io.BytesIO(case.body) if len(case.body) > 1 << 20 else case.body or None
    async with http.request(
        case.method,
        base + case.target,
        data=data,
        headers=case.headers,
        skip_auto_headers=("Content-Type",),
        compress=None,
    ) as response:
        body = await response.read()
        if response.status >= 400 and case.method != "HEAD":  # errors: JSON, plain words
            assert body.startswith(b"{"), body[:200]
            error = json.loads(body)
            assert "Traceback" not in error["message"]
            assert "<class" not in error["message"]
        return response.status


async def _run_corpus(http: aiohttp.ClientSession, base: str, port: int) -> list[str]:
    failures = []
    for case in CASES:
        try:
            status = await _status(http, base, port, case)
        except Exception as exc:  # a reset connection is a failure too
            failures.append(f"{case.label}: {type(exc).__name__}: {exc}")
            continue
        if status != case.status or (status >= 500 and status not in (503, 504)):
            failures.append(f"{case.label}: {status}, expected {case.status}")
    return failures


async def test_serve_rest_door_answers_the_corpus(taskgate: Taskgate) -> None:
    failures = await _run_corpus(taskgate.http, taskgate.base_url, taskgate.server.http_port)
    assert not failures, "\n".join(failures)


async def test_gateway_answers_the_corpus(taskgate: Taskgate) -> None:
    config = StandaloneConfig(upstream=taskgate.grpc_target, port=0, options=GatewayOptions.kfp())
    async with gateway_serving(config) as running:
        base = f"http://127.0.0.1:{running.port}"
        failures = await _run_corpus(taskgate.http, base, running.port)
    assert not failures, "\n".join(failures)


async def test_grpc_door_answers_the_corpus(taskgate: Taskgate) -> None:
    failures = []
    for case in GRPC_CASES:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = taskgate.channel.unary_unary(
            case.method
        )  # raw bytes both ways
        try:
            await call(case.request, timeout=10)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            text = error.details() or ""
            if "<class" in text or "Error:" in text.split(":")[0]:
                failures.append(f"{case.label}: Python text in {text!r}")
        if code != case.code or code in ("UNKNOWN", "INTERNAL", "DATA_LOSS"):
            failures.append(f"{case.label}: {code}, expected {case.code}")
    assert not failures, "\n".join(failures)
