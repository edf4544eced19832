"""GrpcInvoker against real servers: the test upstream (as a process) and a garbage-sending one.

Every test runs twice: unary calls through grpc.aio alone, and through the event-loop client
(`--upstream-client event-loop`, gateway/h2channel.py) with grpc.aio behind it; both must give
the same answers, errors and metadata."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, descriptor_pool
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from prometheus_client import REGISTRY

from taskgate.gateway.discovery import discover_services
from taskgate.gateway.h2channel import FastUnary
from taskgate.gateway.invoker import ResponseStream
from taskgate.gateway.upstream import GrpcInvoker, open_upstream_channel
from taskgate.rpc import CallOptions, RpcStatusError
from tests.protos import transcoding_test_pb2 as pb
from tests.upstream_process import (
    UpstreamProcess,
    free_port,
    running_upstream,
    serve_handlers,
    start_upstream,
)
from tests.upstream_server import UNKNOWN_DETAIL_TYPE

pytestmark = pytest.mark.integration

NO_OPTIONS = CallOptions()
CLIENTS = ("grpcio", "event-loop")


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as running:
        yield running


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def invoker_for(
    target: str, client: str, *, connected: bool = True, **kwargs: Any
) -> AsyncIterator[GrpcInvoker]:
    """A GrpcInvoker on `target` using `client`; with the event-loop client, its connection up
    first (unless `connected` is False: the upstream is not there yet)."""
    async with open_upstream_channel(target) as channel:
        fast = None
        if client == "event-loop":
            fast = FastUnary(target, max_message_bytes=4 << 20, user_agent="test/1")
            assert await fast.connect() is connected
        try:
            yield GrpcInvoker(channel, upstream=target, fast=fast, **kwargs)
        finally:
            if fast is not None:
                await fast.close()


@pytest.fixture
async def invoker(upstream: UpstreamProcess, client: str) -> AsyncIterator[GrpcInvoker]:
    async with invoker_for(upstream.target, client) as invoker:
        yield invoker


async def failure(call: Any) -> RpcStatusError:
    with pytest.raises(RpcStatusError) as caught:
        await call
    return caught.value


def upstream_calls(client: str) -> float:
    found = REGISTRY.get_sample_value("taskgate_gateway_upstream_calls_total", {"client": client})
    return found or 0.0


async def test_unary_returns_the_response_and_both_metadata(
    invoker: GrpcInvoker, client: str
) -> None:
    options = CallOptions(metadata=(("x-user", "ada"), ("x-raw-bin", b"\x00\xff")), timeout=5)
    before = upstream_calls(client)

    result = await invoker.unary("/tgtest.Library/GetBook", pb.GetBookRequest(name="s/1"), options)

    assert upstream_calls(client) == before + 1  # the client it was made with, counted
    assert result.response == pb.Book(name="s/1", title="title of s/1", page_count=3, color=pb.RED)
    assert ("x-echo-x-user", "ada") in result.header_metadata
    assert ("x-echo-x-raw-bin", b"\x00\xff") in result.header_metadata
    assert isinstance(result.trailing_metadata, tuple)


async def test_echo_returns_exactly_what_was_sent(invoker: GrpcInvoker) -> None:
    request = pb.Scalars(f_int64=-(2**62), f_bytes=b"\x00", tags=["a", "b"], display_name="x")
    request.labels["k"] = "v"
    request.ts.GetCurrentTime()

    result = await invoker.unary("/tgtest.Echo/Echo", request, NO_OPTIONS)

    assert result.response == request


async def test_response_types_can_come_from_a_discovered_pool(
    upstream: UpstreamProcess, client: str
) -> None:
    async with open_upstream_channel(upstream.target) as channel:
        found = await discover_services(channel, target=upstream.target)
    async with invoker_for(upstream.target, client, pool=found.pool) as invoker:
        request = pb.ListBooksRequest(parent="shelves/1", page_size=3)
        result = await invoker.unary("/tgtest.Library/ListBooks", request, NO_OPTIONS)

    assert result.response.DESCRIPTOR.file.pool is not descriptor_pool.Default()
    assert pb.ListBooksResponse.FromString(result.response.SerializeToString()).total_size == 6


async def collect(stream: AsyncIterator[Message], into: list[Message]) -> None:
    async for message in stream:
        into.append(message)


async def test_server_stream_yields_every_message(invoker: GrpcInvoker) -> None:
    books: list[Message] = []
    request = pb.StreamBooksRequest(shelf="shelves/1", count=3, interval_ms=10)
    await collect(invoker.server_stream("/tgtest.Library/StreamBooks", request, NO_OPTIONS), books)

    assert [b.name for b in books if isinstance(b, pb.Book)] == [
        f"shelves/1/books/{i}" for i in range(3)
    ]


async def test_http_body_stream(invoker: GrpcInvoker) -> None:
    chunks: list[Message] = []
    request = pb.ReadFileRequest(path="a/b.txt")
    await collect(invoker.server_stream("/tgtest.Library/StreamFile", request, NO_OPTIONS), chunks)
    data = [getattr(chunk, "data", None) for chunk in chunks]
    assert data == [f"chunk {i} of a/b.txt\n".encode() for i in range(3)]


@pytest.mark.parametrize("fail_after", [0, 2])
async def test_stream_errors_arrive_after_the_messages_before_them(
    invoker: GrpcInvoker, fail_after: int
) -> None:
    books: list[Message] = []
    request = pb.StreamBooksRequest(shelf="s", count=5, fail_after=fail_after, fail_code=5)
    stream = invoker.server_stream("/tgtest.Library/StreamBooks", request, NO_OPTIONS)

    error = await failure(collect(stream, books))

    assert len(books) == fail_after
    assert (error.status.code, error.status.message) == (
        grpc.StatusCode.NOT_FOUND,
        f"failed after {fail_after} books",
    )


async def test_error_details_are_decoded_and_unknown_types_kept_raw(invoker: GrpcInvoker) -> None:
    request = pb.FailRequest(code=3, message="bad book", with_details=True, unknown_detail=True)

    error = await failure(invoker.unary("/tgtest.Library/Fail", request, NO_OPTIONS))

    status = error.status
    assert (status.code, status.message) == (grpc.StatusCode.INVALID_ARGUMENT, "bad book")
    bad_request, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "name"
    assert status.details[1].Unpack(info)
    assert info.reason == "FAIL"
    assert status.details[2] == any_pb2.Any(type_url=UNKNOWN_DETAIL_TYPE, value=b"\x08\x2a")


async def test_deadline_exceeded(invoker: GrpcInvoker) -> None:
    request = pb.FailRequest(code=13, delay_ms=3000)
    started = time.monotonic()

    call = invoker.unary("/tgtest.Library/Fail", request, CallOptions(timeout=0.2))
    error = await failure(call)

    assert error.status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


async def test_cancelling_the_caller_cancels_the_call(invoker: GrpcInvoker) -> None:
    request = pb.FailRequest(code=13, delay_ms=5000)
    task = asyncio.create_task(invoker.unary("/tgtest.Library/Fail", request, NO_OPTIONS))
    await asyncio.sleep(0.3)
    started = time.monotonic()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 1
    # The channel is still usable afterwards.
    result = await invoker.unary("/tgtest.Library/Fail", pb.FailRequest(), NO_OPTIONS)
    assert result.response.ByteSize() == 0


async def eventually_answers(invoker: GrpcInvoker, request: Message, within: float) -> Message:
    """Call GetBook until it succeeds (the channel reconnects with backoff)."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = await invoker.unary("/tgtest.Library/GetBook", request, NO_OPTIONS)
        except RpcStatusError as error:
            if error.status.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return result.response


async def test_dead_upstream_is_named_and_the_channel_recovers(client: str) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    request = pb.GetBookRequest(name="s/1")
    async with invoker_for(target, client, connected=False) as invoker:
        for _ in range(3):  # fails fast each time, with no wait for a connection
            started = time.monotonic()
            error = await failure(invoker.unary("/tgtest.Library/GetBook", request, NO_OPTIONS))
            assert time.monotonic() - started < 2
            assert (error.status.code, error.status.message) == (
                grpc.StatusCode.UNAVAILABLE,
                f"upstream {target} is unavailable: connection refused",
            )

        async with start_upstream(port=port):
            response = await eventually_answers(invoker, request, within=10)

    assert response == pb.Book(name="s/1", title="title of s/1", page_count=3, color=pb.RED)


#: Book.name (field 1, length-delimited) claiming 5 bytes and carrying 2: undecodable.
GARBAGE = b"\x0a\x05ab"


async def send_garbage(request: bytes, context: Any) -> bytes:
    return GARBAGE


async def stream_garbage(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield pb.Book(name="fine").SerializeToString()
    yield GARBAGE


@pytest.fixture
async def garbage_invoker(client: str) -> AsyncIterator[GrpcInvoker]:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetBook": grpc.unary_unary_rpc_method_handler(send_garbage),
        "StreamBooks": grpc.unary_stream_rpc_method_handler(stream_garbage),
    }
    async with (
        serve_handlers("tgtest.Library", handlers) as target,
        invoker_for(target, client) as invoker,
    ):
        yield invoker


async def test_malformed_response_is_internal(garbage_invoker: GrpcInvoker) -> None:
    call = garbage_invoker.unary("/tgtest.Library/GetBook", pb.GetBookRequest(), NO_OPTIONS)

    error = await failure(call)

    assert error.status.code == grpc.StatusCode.INTERNAL
    assert error.status.message.startswith("upstream 127.0.0.1:")
    assert error.status.message.endswith(" sent a malformed response to /tgtest.Library/GetBook")


async def test_malformed_stream_message_ends_the_stream(garbage_invoker: GrpcInvoker) -> None:
    books: list[Message] = []
    stream = garbage_invoker.server_stream(
        "/tgtest.Library/StreamBooks", pb.StreamBooksRequest(), NO_OPTIONS
    )

    error = await failure(collect(stream, books))

    assert books == [pb.Book(name="fine")]
    assert error.status.code == grpc.StatusCode.INTERNAL


class SlowLibrary:
    """In-process handlers that never finish by themselves and record their cancellation."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def wait(self) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def slow_unary(self, request: bytes, context: Any) -> bytes:
        await self.wait()
        return b""

    async def endless_stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield pb.Book(name="first").SerializeToString()
        await self.wait()


@pytest.fixture
async def slow(client: str) -> AsyncIterator[tuple[SlowLibrary, GrpcInvoker]]:
    library = SlowLibrary()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetBook": grpc.unary_unary_rpc_method_handler(library.slow_unary),
        "StreamBooks": grpc.unary_stream_rpc_method_handler(library.endless_stream),
    }
    async with (
        serve_handlers("tgtest.Library", handlers) as target,
        invoker_for(target, client) as invoker,
    ):
        yield library, invoker


async def test_the_server_sees_a_cancelled_unary_call(
    slow: tuple[SlowLibrary, GrpcInvoker],
) -> None:
    library, invoker = slow
    call = invoker.unary("/tgtest.Library/GetBook", pb.GetBookRequest(), NO_OPTIONS)
    task = asyncio.create_task(call)
    await asyncio.sleep(0.2)

    task.cancel()

    await asyncio.wait_for(library.cancelled.wait(), timeout=5)
    assert task.cancelled()


async def test_leaving_a_stream_early_cancels_it(slow: tuple[SlowLibrary, GrpcInvoker]) -> None:
    library, invoker = slow
    stream = invoker.server_stream(
        "/tgtest.Library/StreamBooks", pb.StreamBooksRequest(), NO_OPTIONS
    )
    assert isinstance(stream, ResponseStream)  # T61: its header metadata, and aclose

    assert await anext(stream) == pb.Book(name="first")
    await stream.aclose()

    await asyncio.wait_for(library.cancelled.wait(), timeout=5)
