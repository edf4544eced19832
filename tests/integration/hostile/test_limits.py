"""Limits under abuse (docs/decisions.md P2, P3): a gzip bomb costs nothing to other calls, an
oversized gRPC message is refused without the memory it would take, concurrency is capped at
once on both doors, idle and slow connections are closed, bad protobuf bytes are the caller's
INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf.message import Message

from taskgate.api import task_pb2
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.rpc import CallOptions
from taskgate.server.grpc_server import create_grpc_server
from taskgate.server.local_invoker import LocalInvoker
from taskgate.server.pipeline import CallPipeline, Method
from tests.integration.hostile.corpus import gzip_bomb
from tests.integration.servers import Taskgate
from tests.upstream_process import free_port

pytestmark = pytest.mark.timeout(120)
log = logging.getLogger(__name__)
CREATE = "/api.TaskService/CreateTask"
JSON = {"Content-Type": "application/json"}
LIST = "/api.TaskService/ListTasks"


async def test_gzip_bomb_is_413_at_once_and_other_calls_keep_their_latency(
    taskgate: Taskgate,
) -> None:
    bomb = gzip_bomb()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            started = time.perf_counter()
            async with taskgate.http.get(f"{taskgate.base_url}/healthz") as response:
                assert response.status == 200
            await taskgate.stub.ListTasks(task_pb2.ListTasksRequest(page_size=1))
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    async def send_bomb() -> tuple[int, float]:
        started = time.perf_counter()
        data = io.BytesIO(bomb)
        async with taskgate.http.post(taskgate.tasks_url, data=data, headers=headers) as r:
            await r.read()
            return r.status, time.perf_counter() - started

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.1)
    answers = await asyncio.gather(*(send_bomb() for _ in range(4)))
    done.set()
    await poller
    log.info("bombs: %s; healthz+ListTasks max %.0f ms", answers, max(latencies) * 1000)
    assert [status for status, _ in answers] == [413] * 4
    assert all(elapsed < 2.0 for _, elapsed in answers)
    assert max(latencies) < 1.0


async def _wait_ready(http_port: int) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{http_port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_oversized_grpc_messages_are_refused_without_taking_memory(
    database_url: str,
) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "TASKGATE_DATABASE_URL": database_url,
        "TASKGATE_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "TASKGATE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_ready(http_port)
        before = _rss_kib(process.pid)
        request = task_pb2.CreateTaskRequest(task=task_pb2.Task(runId="x" * (16 << 20)))
        raw = request.SerializeToString()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CREATE)
            results = await asyncio.gather(
                *(call(raw, timeout=20) for _ in range(8)), return_exceptions=True
            )
        after = _rss_kib(process.pid)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else r for r in results]
    log.info("server RSS %d MiB -> %d MiB after 8 x 16 MiB", before // 1024, after // 1024)
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 8
    # KiB. Before the limit, this took +314 MiB. grpcio 1.75 (the floor) reads part of each
    # oversized message before refusing it (+69 MiB seen); newer releases refuse from the length
    # prefix (about +10 MiB). Either way, well below the 128 MiB sent.
    assert after - before < 96 * 1024


@asynccontextmanager
async def blocked_doors(limit: int) -> AsyncIterator[tuple[int, int, asyncio.Event]]:
    """Both doors over a pipeline whose CreateTask waits for `release`; --max-concurrent-calls
    `limit`."""
    release = asyncio.Event()

    async def create(request: Message, options: CallOptions) -> Message:
        await release.wait()
        return task_pb2.Task()

    methods = {CREATE: Method(create, task_pb2.CreateTaskRequest, task_pb2.Task)}
    pipeline = CallPipeline(methods)
    async with AsyncExitStack() as stack:
        server = create_grpc_server(pipeline, max_concurrent_calls=limit)
        grpc_port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stack.push_async_callback(server.stop, None)
        routes = RouteTable.from_services([task_pb2.DESCRIPTOR.services_by_name["TaskService"]])
        options = GatewayOptions.kfp(max_concurrent_calls=limit)
        app = create_gateway_app(routes, LocalInvoker(pipeline), options)
        http_port = await start_http(stack, app, "127.0.0.1", 0, shutdown_timeout=0.5)
        try:
            yield grpc_port, http_port, release
        finally:
            release.set()


async def test_calls_past_the_limit_are_refused_at_once_on_both_doors() -> None:
    async with blocked_doors(limit=2) as (grpc_port, http_port, release):
        url = f"http://127.0.0.1:{http_port}/apis/v1alpha1/tasks"
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
            aiohttp.ClientSession() as http,
        ):
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CREATE)

            async def hold() -> object:
                return await call(b"", timeout=10)

            held = [asyncio.create_task(hold()) for _ in range(2)]
            posts = [
                asyncio.create_task(http.post(url, data=b"{}", headers=JSON)) for _ in range(2)
            ]
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"", timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            async with http.post(url, data=b"{}", headers=JSON) as response:
                assert response.status == 429
                assert (await response.json())["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[
                    0
                ]
            async with http.get(f"http://127.0.0.1:{http_port}/healthz") as response:
                assert response.status == 200  # not counted
            assert time.perf_counter() - started < 1.0
            release.set()
            await asyncio.gather(*held)
            for post in posts:
                async with await post as response:
                    assert response.status == 200
            async with http.post(url, data=b"{}", headers=JSON) as response:
                assert response.status == 200  # the slots are free again


async def _closed_within(port: int, first: bytes, seconds: float) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if first:
            writer.write(first)
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
        return True
    except TimeoutError:
        return False
    finally:
        writer.close()


async def test_idle_and_slow_connections_are_closed_on_both_doors() -> None:
    async with blocked_doors(limit=10) as (grpc_port, http_port, _):
        checks = [
            *(_closed_within(http_port, b"", 9) for _ in range(20)),
            *(_closed_within(http_port, b"GET /healthz HTTP/1.1\r\nHost: x", 9) for _ in range(5)),
            *(_closed_within(grpc_port, b"", 9) for _ in range(20)),
            *(_closed_within(grpc_port, b"PRI * HTTP/2.0\r\n", 9) for _ in range(5)),
        ]
        started = time.perf_counter()
        closed = await asyncio.gather(*checks)
        log.info("all closed after %.1f s", time.perf_counter() - started)
    assert all(closed)


async def test_a_body_that_trickles_in_is_408() -> None:
    routes = RouteTable.from_services([task_pb2.DESCRIPTOR.services_by_name["TaskService"]])
    options = GatewayOptions.kfp(body_timeout=0.5)
    app = create_gateway_app(routes, LocalInvoker(CallPipeline({})), options)
    async with AsyncExitStack() as stack:
        port = await start_http(stack, app, "127.0.0.1", 0, shutdown_timeout=0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        async with asyncio.timeout(5):
            status_line = await reader.readline()
        writer.close()
    assert status_line.split()[1] == b"408"


async def test_undecodable_protobuf_is_invalid_argument_without_a_traceback(
    taskgate: Taskgate, caplog: pytest.LogCaptureFixture
) -> None:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = taskgate.channel.unary_unary(CREATE)
    with caplog.at_level(logging.INFO), pytest.raises(grpc.aio.AioRpcError) as failure:
        await call(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == "the request is not a valid api.CreateTaskRequest message"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
