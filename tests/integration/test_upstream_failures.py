"""`taskgate gateway` in front of upstreams that fail below gRPC, on real sockets
(docs/decisions.md T70–T72): one that accepts and never answers (504), one that answers in
something other than HTTP/2 (502), none at all (503), and one that refuses the request's
metadata as too large (431)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf import descriptor_pb2

from taskgate.gateway.discovery import default_pool_file, with_imports
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from taskgate.gateway.upstream import CONNECT_TIMEOUT_MS
from tests.integration.test_gateway_cancel import library_upstream
from tests.protos import transcoding_test_pb2 as pb
from tests.upstream_process import free_port

DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, UNAVAILABLE = 4, 13, 8, 14
CONNECT_SECONDS = CONNECT_TIMEOUT_MS / 1000
BOOK = "/v1/shelves/1/books/2"

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def say_nothing(writer: asyncio.StreamWriter) -> None:
    return


async def http1_answer(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()


async def noise(writer: asyncio.StreamWriter) -> None:
    writer.write(bytes(range(256)) * 8)
    await writer.drain()


@asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that sends `reply` to each connection, then reads until the
    peer leaves; yields its target. Every connection is closed on exit."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await reply(writer)
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def descriptor_set(directory: Path) -> Path:
    """The test proto and its imports as a FileDescriptorSet: the gateway starts without asking
    these upstreams anything."""
    files = with_imports([default_pool_file(pb.DESCRIPTOR.name)])
    path = directory / "library.binpb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=files.values()).SerializeToString())
    return path


async def get(url: str, **headers: str) -> tuple[int, Any, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json(), time.monotonic() - started


@asynccontextmanager
async def gateway_for(target: str, tmp_path: Path, **options: Any) -> AsyncIterator[str]:
    config = StandaloneConfig(
        upstream=target,
        port=0,
        descriptor_set=descriptor_set(tmp_path),
        options=GatewayOptions.generic(**options),
    )
    async with gateway_serving(config) as running:
        yield f"http://127.0.0.1:{running.port}"


async def test_a_silent_upstream_does_not_hold_up_start_up(tmp_path: Path) -> None:
    """With a descriptor set the gateway listens at once (T73), even while the event-loop
    client's connection (P37) waits for the upstream's SETTINGS."""
    async with raw_server(say_nothing) as target:
        started = time.monotonic()
        async with gateway_for(target, tmp_path):
            assert time.monotonic() - started < 1


async def test_an_upstream_that_never_answers_is_504_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    async with raw_server(say_nothing) as target, gateway_for(target, tmp_path) as url:
        status, body, seconds = await get(f"{url}{BOOK}")  # no deadline at all
    assert status == 504
    assert body["code"] == DEADLINE_EXCEEDED
    assert body["message"] == (
        f"upstream {target} did not answer: "
        "it accepted the connection but never completed the HTTP/2 handshake"
    )
    assert seconds < CONNECT_SECONDS + 2


async def test_an_upstream_that_never_answers_is_504_at_the_calls_deadline(
    tmp_path: Path,
) -> None:
    async with (
        raw_server(say_nothing) as target,
        gateway_for(target, tmp_path, default_timeout=30.0) as url,
    ):
        status, body, seconds = await get(f"{url}{BOOK}", **{"Grpc-Timeout": "1S"})
        assert (status, body["code"]) == (504, DEADLINE_EXCEEDED)
        assert seconds < 2.5
        status, body, seconds = await get(f"{url}{BOOK}")  # the default timeout, 30 s
        assert (status, body["code"]) == (504, DEADLINE_EXCEEDED)
        assert seconds < CONNECT_SECONDS + 2


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (http1_answer, "it answered with HTTP/1.x, not gRPC"),
        (noise, "it does not speak HTTP/2 (gRPC)"),
    ],
    ids=["http1", "noise"],
)
async def test_an_upstream_that_answers_garbage_is_502(
    tmp_path: Path, reply: Reply, words: str
) -> None:
    async with raw_server(reply) as target, gateway_for(target, tmp_path) as url:
        status, body, _ = await get(f"{url}{BOOK}")
    assert status == 502
    assert body == {
        "code": INTERNAL,
        "message": f"upstream {target} is not a gRPC server: {words}",
    }


async def test_no_upstream_at_all_is_503(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    async with gateway_for(target, tmp_path) as url:
        status, body, _ = await get(f"{url}{BOOK}")
    assert status == 503
    assert body == {
        "code": UNAVAILABLE,
        "message": f"upstream {target} is unavailable: connection refused",
    }


async def test_metadata_the_upstream_refuses_as_too_large_is_431(tmp_path: Path) -> None:
    async with library_upstream() as target, gateway_for(target, tmp_path) as url:
        status, body, _ = await get(f"{url}{BOOK}", **{"Grpc-Metadata-X-Big": "a" * 20_000})
        assert status == 431
        assert body["code"] == RESOURCE_EXHAUSTED
        assert body["message"].startswith(f"upstream {target} refused the request's metadata")
        status, body, _ = await get(f"{url}{BOOK}", **{"Grpc-Metadata-X-Small": "a"})
        assert (status, body) == (200, {"name": "shelves/1/books/2"})
