"""Streamed requests (gateway/streaming.py, T62/T63): NDJSON lines into request messages, the
limits on them, and the routes of client-streaming and bidirectional methods in the app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import grpc
import pytest
from aiohttp.test_utils import TestClient
from google.protobuf.message import Message

from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.invoker import ResponseStream, StreamingInvoker, UnaryResult
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteMatch
from taskgate.gateway.streaming import LineSplitter, request_messages
from taskgate.rpc import CallOptions, RpcStatusError
from taskgate.server.local_invoker import RESPONSE_HEADERS, LocalInvoker
from taskgate.server.pipeline import CallPipeline
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
TABLE = fixture_table()
GENERIC = GatewayOptions.generic()
IMPORT = "/tgtest.Library/ImportBooks"
CHAT = "/tgtest.Library/ChatBooks"
JSON = {"Content-Type": "application/json"}


# --- LineSplitter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
        ([b'{"a":', b"1}\n", b'{"b":2}'], [b'{"a":1}', b'{"b":2}']),  # no final newline
        ([b'{"a":1}\r\n\r\n  \n{}\n'], [b'{"a":1}\r', b"{}"]),  # blank lines skipped
        ([b"", b"\n\n"], []),
        ([b"ab", b"c\nde\nf", b"g\n"], [b"abc", b"de", b"fg"]),  # lines across chunks
        ([b"x" * 10 + b"\n", b"y" * 10], [b"x" * 10, b"y" * 10]),  # exactly at the limit
    ],
)
def test_line_splitter(chunks: list[bytes], lines: list[bytes]) -> None:
    splitter = LineSplitter(limit=10)
    found = [line for c in chunks for line in splitter.feed(c)] + splitter.finish()
    assert found == lines


@pytest.mark.parametrize(
    "chunks",
    [
        [b"x" * 11 + b"\n"],  # a complete line over the limit
        [b"x" * 6, b"x" * 5],  # an unfinished one, refused before its end arrives
    ],
)
def test_line_splitter_refuses_a_line_over_the_limit(chunks: list[bytes]) -> None:
    splitter = LineSplitter(limit=10)
    *complete, last = chunks
    for c in complete:
        splitter.feed(c)
    with pytest.raises(TranscodeError) as caught:
        splitter.feed(last)
    assert caught.value.http_status == 413
    assert caught.value.status.code == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- request_messages --------------------------------------------------------------------------


@dataclass
class Chunks:
    """A BodyStream of fixed chunks, each after `delay` seconds."""

    chunks: list[bytes]
    delay: float = 0.0

    async def readany(self) -> bytes:
        await asyncio.sleep(self.delay)
        return self.chunks.pop(0) if self.chunks else b""


def match_of(path: str = "/v1/shelves/s1/books:chat") -> RouteMatch:
    found = TABLE.match("POST", path)
    assert isinstance(found, RouteMatch)
    return found


async def messages_of(
    body: Chunks,
    *,
    query: str = "",
    encoding: str = "",
    options: GatewayOptions = GENERIC,
    match: RouteMatch | None = None,
) -> list[Message]:
    stream = request_messages(
        body,
        match or match_of(),
        query,
        content_type="application/json",
        content_encoding=encoding,
        options=options,
    )
    return [message async for message in stream]


async def test_each_line_is_a_request_with_the_path_applied() -> None:
    body = Chunks([b'{"book":{"title":"a"},"bookId":"1"}\n{"book', b'":{"title":"b"}}\n'])

    found = await messages_of(body)

    assert found == [
        pb.CreateBookRequest(parent="shelves/s1", book=pb.Book(title="a"), book_id="1"),
        pb.CreateBookRequest(parent="shelves/s1", book=pb.Book(title="b")),
    ]


async def test_with_a_body_field_each_line_is_that_field_and_the_query_applies() -> None:
    body = Chunks([b'{"title":"a"}\n{"title":"b"}'])

    found = await messages_of(body, query="book_id=q", match=match_of("/v1/shelves/import/books"))

    assert found == [
        pb.CreateBookRequest(book=pb.Book(title="a"), book_id="q"),
        pb.CreateBookRequest(book=pb.Book(title="b"), book_id="q"),
    ]


async def test_a_bad_line_is_400_naming_the_field() -> None:
    body = Chunks([b'{"book":{"title":"a"}}\n{"book":{"pageCount":"many"}}\n'])
    with pytest.raises(TranscodeError) as caught:
        await messages_of(body)
    assert caught.value.status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page" in caught.value.status.message.lower()


async def test_each_line_must_arrive_within_the_body_timeout() -> None:
    options = GatewayOptions.generic(body_timeout=0.05)
    # Three lines, 0.03 s apart: each is in time though the whole body is not.
    slow = Chunks([b"{}\n", b"{}\n", b"{}\n"], delay=0.03)
    assert len(await messages_of(slow, options=options)) == 3

    with pytest.raises(TranscodeError) as caught:
        await messages_of(Chunks([b"{}\n", b"{}\n"], delay=0.2), options=options)
    assert caught.value.http_status == 408


async def test_each_line_is_bounded_not_the_whole_stream() -> None:
    options = GatewayOptions.generic(max_body_bytes=40)
    line = b'{"book":{"title":"' + b"x" * 10 + b'"}}\n'
    assert len(await messages_of(Chunks([line] * 20), options=options)) == 20
    with pytest.raises(TranscodeError) as caught:
        await messages_of(Chunks([line.replace(b"x" * 10, b"x" * 40)]), options=options)
    assert caught.value.http_status == 413


async def test_a_compressed_stream_is_415() -> None:
    with pytest.raises(TranscodeError) as caught:
        await messages_of(Chunks([b"{}\n"]), encoding="gzip")
    assert caught.value.http_status == 415


# --- the routes in the app ---------------------------------------------------------------------


@dataclass
class StreamingFake(FakeInvoker):
    """A FakeInvoker that also takes request streams: `client_stream` answers the number of
    requests in `total_size`, `bidi_stream` answers one Book per request, named by it."""

    received: list[Message] = field(default_factory=list)
    #: how each client-streaming call ended: "completed", or the exception its requests raised.
    endings: list[str | BaseException] = field(default_factory=list)

    async def client_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> UnaryResult:
        try:
            async for request in requests:
                self.received.append(request)
        except BaseException as exc:
            self.endings.append(exc)
            raise
        self.endings.append("completed")
        return UnaryResult(pb.ListBooksResponse(total_size=len(self.received)))

    def bidi_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> ResponseStream:
        return ResponseStream(self._answers(requests), self._header)

    async def _answers(self, requests: AsyncIterator[Message]) -> AsyncIterator[Message]:
        async for request in requests:
            self.received.append(request)
            assert isinstance(request, pb.CreateBookRequest)
            yield pb.Book(name=f"{request.parent}/books/{request.book_id}")

    async def _header(self) -> Sequence[tuple[str, str]]:
        return (("x-head", "h"),)


def test_the_fakes_are_what_the_app_tells_apart() -> None:
    assert isinstance(StreamingFake(), StreamingInvoker)
    assert not isinstance(FakeInvoker(), StreamingInvoker)


async def test_a_client_streaming_url_is_not_served_by_a_broader_route(
    aiohttp_client: ClientFactory,
) -> None:
    # CreateBook's POST /v1/{parent=shelves/*}/books matches this URL too: it answered 200.
    invoker = FakeInvoker()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))

    resp = await client.post("/v1/shelves/import/books", data=b'{"title":"a"}\n', headers=JSON)

    assert resp.status == 501
    body = await resp.json()
    assert body["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert "tgtest.Library.ImportBooks" in body["message"]
    assert invoker.calls == []


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/jsonl", "Application/X-NDJSON; charset=utf-8"],
)
async def test_a_streamed_body_may_say_it_is_ndjson(
    aiohttp_client: ClientFactory, content_type: str
) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))
    headers = {"Content-Type": content_type}
    resp = await client.post("/v1/shelves/import/books", data=b'{"title":"a"}\n', headers=headers)
    assert resp.status == 200
    assert await resp.json() == {"totalSize": 1}


async def test_ndjson_is_for_streamed_bodies_only(aiohttp_client: ClientFactory) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))
    plain = {"Content-Type": "text/plain"}
    resp = await client.post("/v1/shelves/import/books", data=b'{"title":"a"}\n', headers=plain)
    assert resp.status == 415
    assert "application/x-ndjson" in (await resp.json())["message"]
    unary = {"Content-Type": "application/x-ndjson"}  # CreateBook takes one JSON body
    resp = await client.post("/v1/shelves/s1/books", data=b'{"title":"a"}', headers=unary)
    assert resp.status == 415
    assert invoker.calls == []


async def test_client_streaming_sends_every_line(aiohttp_client: ClientFactory) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))

    body = b'{"title":"a"}\n{"title":"b"}\n'
    resp = await client.post("/v1/shelves/import/books", data=body, headers=JSON)

    assert resp.status == 200
    assert await resp.json() == {"totalSize": 2}
    assert invoker.received == [
        pb.CreateBookRequest(book=pb.Book(title="a")),
        pb.CreateBookRequest(book=pb.Book(title="b")),
    ]


async def test_a_client_that_leaves_mid_body_does_not_complete_the_call(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))
    _, writer = await asyncio.open_connection(client.host, client.port)
    line = b'{"title":"a"}\n'
    head = "POST /v1/shelves/import/books HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
    writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + line)
    await writer.drain()
    for _ in range(100):  # until the first line has reached the invoker
        if invoker.received:
            break
        await asyncio.sleep(0.01)
    writer.close()  # 986 bytes short of what it announced
    await writer.wait_closed()
    for _ in range(100):
        if invoker.endings:
            break
        await asyncio.sleep(0.01)

    assert invoker.received == [pb.CreateBookRequest(book=pb.Book(title="a"))]
    [ending] = invoker.endings
    assert ending != "completed"  # a truncated upload is never taken for a whole one


async def test_bidi_streams_ndjson_back_with_the_header_metadata(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))

    body = b'{"bookId":"1"}\n{"bookId":"2"}\n'
    resp = await client.post("/v1/shelves/s/books:chat", data=body, headers=JSON)

    assert resp.status == 200
    assert resp.headers["Grpc-Metadata-X-Head"] == "h"
    lines = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert lines == [
        {"result": {"name": "shelves/s/books/1"}},
        {"result": {"name": "shelves/s/books/2"}},
    ]


async def test_a_streamed_http_body_route_is_501_naming_the_method(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = StreamingFake()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GENERIC))

    resp = await client.post("/v1/shelves/s/books/b:uploadStream", data=b"raw")

    assert resp.status == 501
    assert "tgtest.Library.UploadStream" in (await resp.json())["message"]
    assert invoker.received == []


# --- LocalInvoker (taskgate serve): TaskService has no streaming method ------------------------


async def test_local_invoker_answers_streaming_calls_unimplemented() -> None:
    invoker = LocalInvoker(cast(CallPipeline, None))
    assert isinstance(invoker, StreamingInvoker)

    async def nothing() -> AsyncIterator[Message]:
        empty: list[Message] = []
        for message in empty:
            yield message

    with pytest.raises(RpcStatusError) as caught:
        await invoker.client_stream("/x.S/M", nothing(), CallOptions())
    assert caught.value.status.code == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.header_metadata == RESPONSE_HEADERS
    for stream in (
        invoker.bidi_stream("/x.S/M", nothing(), CallOptions()),
        invoker.server_stream("/x.S/M", pb.Book(), CallOptions()),
    ):
        with pytest.raises(RpcStatusError) as caught:
            await anext(stream)
        assert caught.value.status.code == grpc.StatusCode.UNIMPLEMENTED
        assert await stream.header_metadata() == ()
