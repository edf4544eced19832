"""A REST client that goes away cancels the call it made (docs/decisions.md T75).

`taskgate gateway`: the upstream's servicer sees the cancellation, for unary and server-streaming
calls. `taskgate serve`: the call pipeline's call is cancelled. The upstream here is a small
servicer whose methods block until cancelled and record that they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import grpc
import pytest

from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from taskgate.server.reflection import enable_reflection
from taskgate.store.task_store import TaskStore
from tests.integration.servers import Taskgate
from tests.protos import transcoding_test_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]
#: How long the upstream may take to notice that its caller left.
NOTICE_SECONDS = 2.0


class BlockingLibrary:
    """GetBook and StreamBooks (after one book) wait until cancelled, and say so."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def _block(self, context: Context) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends it
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def GetBook(self, request: pb.GetBookRequest, context: Context) -> pb.Book:
        await self._block(context)
        return pb.Book()  # pragma: no cover (never reached)

    async def StreamBooks(
        self, request: pb.StreamBooksRequest, context: Context
    ) -> AsyncIterator[pb.Book]:
        yield pb.Book(name=f"{request.shelf}/books/1")
        await self._block(context)


GetBook = Callable[[pb.GetBookRequest, Context], Awaitable[pb.Book]]
StreamBooks = Callable[[pb.StreamBooksRequest, Context], AsyncIterator[pb.Book]]


async def get_book(request: pb.GetBookRequest, context: Context) -> pb.Book:
    """GetBook answered at once: the book named in the request."""
    return pb.Book(name=request.name)


@asynccontextmanager
async def library_upstream(
    get: GetBook = get_book, stream: StreamBooks | None = None, *, port: int = 0
) -> AsyncIterator[str]:
    """tgtest.Library's GetBook (and StreamBooks) on 127.0.0.1:`port`, with reflection (which
    describes the whole service); yields its target."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetBook": grpc.unary_unary_rpc_method_handler(
            get,
            request_deserializer=pb.GetBookRequest.FromString,
            response_serializer=pb.Book.SerializeToString,
        )
    }
    if stream is not None:
        handlers["StreamBooks"] = grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=pb.StreamBooksRequest.FromString,
            response_serializer=pb.Book.SerializeToString,
        )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("tgtest.Library", handlers)]
    )
    enable_reflection(server, ["tgtest.Library"])
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{bound}"
    finally:
        await server.stop(None)


async def leave_after_start(url: str, started: asyncio.Event, *, read_line: bool) -> None:
    """GET `url`, and close the connection once `started` is set (and the first line of a
    stream has arrived, with `read_line`)."""

    async def call(http: aiohttp.ClientSession) -> None:
        async with http.get(url) as response:
            assert response.status == 200
            if read_line:
                await response.content.readline()
            await asyncio.Event().wait()  # until cancelled below

    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(call(http))
        await asyncio.wait_for(started.wait(), 10)
        if read_line:
            await asyncio.sleep(0.1)  # the first line has arrived
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    # the session is closed, and with it the connection


@pytest.mark.parametrize(
    ("path", "read_line"),
    [("/v1/shelves/1/books/2", False), ("/v1/shelves/1/books:stream?count=5", True)],
    ids=["unary", "server-stream"],
)
async def test_a_client_that_leaves_cancels_the_upstream_call(path: str, read_line: bool) -> None:
    servicer = BlockingLibrary()
    async with library_upstream(servicer.GetBook, servicer.StreamBooks) as target:
        config = StandaloneConfig(upstream=target, port=0)
        async with gateway_serving(config) as running:
            url = f"http://127.0.0.1:{running.port}{path}"
            await leave_after_start(url, servicer.started, read_line=read_line)
            await asyncio.wait_for(servicer.cancelled.wait(), NOTICE_SECONDS)


async def test_serve_cancels_the_pipeline_call_of_a_client_that_leaves(
    taskgate: Taskgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def blocking_list(self: TaskStore, query: object) -> object:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None  # pragma: no cover

    monkeypatch.setattr(TaskStore, "list_tasks", blocking_list)
    await leave_after_start(taskgate.tasks_url, started, read_line=False)
    await asyncio.wait_for(cancelled.wait(), NOTICE_SECONDS)
