"""Compression on both doors (docs/decisions.md T49, P12): gzip REST responses through `serve`
and `taskgate gateway`, gzip gRPC messages in and out (bytes counted through a relay)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import grpc
import pytest

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.kfp import new_task
from tests.integration.servers import Taskgate
from tests.upstream_process import UpstreamProcess, running_upstream

pytestmark = pytest.mark.integration


async def raw_get(url: str, accept_encoding: str) -> tuple[int, Any, bytes]:
    """Status, headers and the body as sent (aiohttp's client would inflate it)."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(url, headers={"Accept-Encoding": accept_encoding}) as response,
    ):
        return response.status, response.headers, await response.read()


async def check_negotiation(url: str) -> bytes:
    """gzip when accepted, identity otherwise, both varying; returns the plain body."""
    status, headers, plain = await raw_get(url, "identity")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert "Accept-Encoding" in headers["Vary"]
    assert len(plain) >= 1024
    for accept in ("gzip", "br;q=1, gzip;q=0.5", "*"):
        status, headers, sent = await raw_get(url, accept)
        assert (status, headers["Content-Encoding"]) == (200, "gzip"), accept
        assert "Accept-Encoding" in headers["Vary"]
        assert int(headers["Content-Length"]) == len(sent) < len(plain)
        assert gzip.decompress(sent) == plain
    for accept in ("gzip;q=0", "gzip;q=0, *", "deflate"):
        _, headers, sent = await raw_get(url, accept)
        assert "Content-Encoding" not in headers, accept
        assert sent == plain
    return plain


async def add_tasks(taskgate: Taskgate, count: int) -> None:
    for i in range(count):
        await taskgate.stub.CreateTask(
            task_pb2.CreateTaskRequest(task=new_task(created_at=100 + i))
        )


async def test_serve_gzips_large_rest_responses_only(taskgate: Taskgate) -> None:
    await add_tasks(taskgate, 12)
    plain = await check_negotiation(f"{taskgate.tasks_url}?page_size=12")
    assert len(json.loads(plain)["tasks"]) == 12
    await check_negotiation(f"{taskgate.base_url}/openapi.json")
    # Under the threshold: as is, and no Vary either.
    for path in ("/livez", "/healthz", "/apis/v1alpha1/tasks?page_size=1"):
        _, headers, _ = await raw_get(taskgate.base_url + path, "gzip")
        assert "Content-Encoding" not in headers
        assert "Vary" not in headers
    # aiohttp's client asks for gzip by default and inflates it: callers see plain JSON.
    async with taskgate.http.get(f"{taskgate.tasks_url}?page_size=12") as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert await response.read() == plain


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


@asynccontextmanager
async def gateway(upstream: str, options: GatewayOptions) -> AsyncIterator[str]:
    config = StandaloneConfig(upstream=upstream, port=0, options=options)
    async with gateway_serving(config) as running:
        yield f"http://127.0.0.1:{running.port}"


async def test_gateway_gzips_unary_but_never_streams(upstream: UpstreamProcess) -> None:
    async with gateway(upstream.target, GatewayOptions.generic()) as base:
        plain = await check_negotiation(f"{base}/v1/shelves/s1/books?page_size=20")
        assert len(json.loads(plain)["books"]) == 20
        for accept in ("application/x-ndjson", "text/event-stream"):
            async with (
                aiohttp.ClientSession(auto_decompress=False) as http,
                http.get(
                    f"{base}/v1/shelves/s1/books:stream?count=40",
                    headers={"Accept-Encoding": "gzip", "Accept": accept},
                ) as response,
            ):
                body = await response.read()
            assert response.status == 200
            assert "Content-Encoding" not in response.headers
            assert body.count(b"s1/books/") == 80
            assert len(body) > 1024
        # A large HttpBody (text) is compressed like any body.
        status, headers, sent = await raw_get(f"{base}/v1/files/{'a' * 1500}", "gzip")
        assert (status, headers["Content-Encoding"]) == (200, "gzip")
        assert gzip.decompress(sent) == b"contents of " + b"a" * 1500


class Relay:
    """A TCP relay on 127.0.0.1 that counts the bytes the server sends back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.from_server = 0
        self.port = 0

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if count:
                    self.from_server += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, count=False), self._pipe(up_reader, writer, count=True)
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
            server.close()


async def bytes_for_list(port: int, **channel: Any) -> tuple[int, int]:
    """(bytes the server sent, tasks listed) for one ListTasks of 30 through a relay."""
    async with (
        Relay(port).running() as relay,
        grpc.aio.insecure_channel(f"127.0.0.1:{relay.port}", **channel) as ch,
    ):
        stub = task_pb2_grpc.TaskServiceStub(ch)
        response = await stub.ListTasks(task_pb2.ListTasksRequest(page_size=30))
        assert response.ByteSize() > 2048
        return relay.from_server, len(response.tasks)


async def test_grpc_compressed_requests_and_responses(taskgate: Taskgate) -> None:
    # A gzip-compressed request is accepted.
    async with grpc.aio.insecure_channel(
        taskgate.grpc_target, compression=grpc.Compression.Gzip
    ) as ch:
        stub = task_pb2_grpc.TaskServiceStub(ch)
        for i in range(30):
            await stub.CreateTask(task_pb2.CreateTaskRequest(task=new_task(created_at=100 + i)))
    port = taskgate.server.grpc_port
    # Large responses are gzipped for clients that accept gzip (grpcio's do, by default)...
    compressed, listed = await bytes_for_list(port)
    # ... and sent as they are to clients that accept identity only.
    identity_only = (("grpc.compression_enabled_algorithms_bitset", 1),)
    plain, listed_plain = await bytes_for_list(port, options=identity_only)
    assert listed == listed_plain == 30
    assert compressed < plain * 0.6, (compressed, plain)  # measured: 1146 vs 2749 bytes
    # taskgate gateway's channel accepts gzip too: the same list through it is intact.
    async with (
        gateway(taskgate.grpc_target, GatewayOptions.kfp()) as base,
        taskgate.http.get(f"{base}/apis/v1alpha1/tasks?page_size=30") as response,
    ):
        assert response.status == 200
        assert len((await response.json())["tasks"]) == 30
