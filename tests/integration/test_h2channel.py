"""The event-loop client (gateway/h2channel.py) against HTTP/2 servers that misbehave.

A real gRPC server only ever shows the client its good side (test_upstream_invoker.py runs the
whole invoker suite through both clients). Here a small scripted HTTP/2 server on 127.0.0.1,
written with `hpack` and raw frames, sends what grpc-core never would: trailers-only HTTP errors,
split and padded frames, resets, GOAWAY, oversized frames, silence, huge headers, and small
flow-control windows. Each test says what a caller of `FastUnary.unary` sees: an outcome with
grpc's code, or None (make the call with grpc.aio).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field

import grpc
import hpack
import pytest

from taskgate.gateway import h2channel
from taskgate.gateway import h2wire as w
from taskgate.gateway.h2channel import FastUnary, UnaryOutcome

pytestmark = pytest.mark.integration

METHOD = "/tgtest.Library/GetBook"
OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK_TRAILERS = [(b"grpc-status", b"0")]
MESSAGE = b"\x0a\x03abc"  # Book{name: "abc"}


def frame(frame_type: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return w.frame_header(len(payload), frame_type, flags, sid) + payload


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + len(body).to_bytes(4, "big") + body


@dataclass
class Request:
    sid: int
    fields: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Peer:
    """One accepted connection, as the scripted server sees it."""

    writer: asyncio.StreamWriter
    encoder: hpack.Encoder = field(default_factory=hpack.Encoder)
    resets: list[tuple[int, int]] = field(default_factory=list)
    pings_acked: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def headers(self, sid: int, fields: list[tuple[bytes, bytes]], *, end: bool = False) -> None:
        block = self.encoder.encode(fields)
        flags = w.END_HEADERS | (w.END_STREAM if end else 0)
        self.send(frame(w.HEADERS, flags, sid, block))

    def answer(self, sid: int, body: bytes = MESSAGE) -> None:
        self.headers(sid, OK_HEADERS)
        self.send(frame(w.DATA, 0, sid, grpc_message(body)))
        self.headers(sid, OK_TRAILERS, end=True)


Respond = Callable[[Peer, Request], Coroutine[object, object, None]]


class ScriptedServer:
    """Accepts connections, sends `settings`, and hands each complete request to `respond`."""

    def __init__(self, respond: Respond, settings: bytes = b"", hello: bool = True) -> None:
        self.respond = respond
        self.settings = settings
        self.hello = hello
        self.peers: list[Peer] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer = Peer(writer)
        self.peers.append(peer)
        decoder = hpack.Decoder()
        pending: dict[int, Request] = {}
        try:
            assert await reader.readexactly(len(w.PREFACE)) == w.PREFACE
            if self.hello:
                peer.send(frame(w.SETTINGS, 0, 0, self.settings))
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                frame_type, flags = head[3], head[4]
                sid = int.from_bytes(head[5:9], "big")
                payload = await reader.readexactly(length)
                if frame_type == w.HEADERS:
                    fields = [(bytes(k), bytes(v)) for k, v in decoder.decode(payload, raw=True)]
                    pending[sid] = Request(sid, fields, b"")
                elif frame_type == w.DATA:
                    pending[sid].body += payload
                    if flags & w.END_STREAM:
                        task = asyncio.create_task(self.respond(peer, pending.pop(sid)))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                elif frame_type == w.SETTINGS and not flags & w.ACK:
                    peer.send(frame(w.SETTINGS, w.ACK, 0))
                elif frame_type == w.RST_STREAM:
                    peer.resets.append((sid, int.from_bytes(payload, "big")))
                elif frame_type == w.PING and flags & w.ACK:
                    peer.pings_acked.append(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            for peer in self.peers:
                peer.writer.close()


@contextlib.asynccontextmanager
async def client_of(server: ScriptedServer, **kwargs: int) -> AsyncIterator[FastUnary]:
    async with server.running() as target:
        client = FastUnary(
            target,
            max_message_bytes=kwargs.get("max_message_bytes", 4 << 20),
            user_agent="test/1",
        )
        try:
            yield client
        finally:
            await client.close()


async def call(
    client: FastUnary,
    body: bytes = b"",
    timeout: float | None = 5,  # noqa: ASYNC109 (the call's deadline, under test)
) -> UnaryOutcome:
    """One call on a connected client; it must be carried (not handed to grpc.aio)."""
    assert await client.connect()
    outcome = await client.unary(METHOD, body, timeout, (("x-user", "ada"),))
    assert outcome is not None
    return outcome


async def test_a_plain_answer_and_what_the_request_looked_like() -> None:
    seen: list[Request] = []

    async def respond(peer: Peer, request: Request) -> None:
        seen.append(request)
        peer.headers(request.sid, [*OK_HEADERS, (b"x-head", b"1")])
        peer.send(frame(w.DATA, 0, request.sid, grpc_message(MESSAGE)))
        peer.headers(request.sid, [*OK_TRAILERS, (b"x-tail-bin", b"AAE")], end=True)

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client, b"request", timeout=1.5)

    assert (outcome.code, outcome.message, outcome.body) == (grpc.StatusCode.OK, "", MESSAGE)
    assert outcome.header_metadata == (("x-head", "1"),)
    assert outcome.trailing_metadata == (("x-tail-bin", b"\x00\x01"),)
    [request] = seen
    assert request.body == grpc_message(b"request")
    assert dict(request.fields) == {
        b":method": b"POST",
        b":scheme": b"http",
        b":path": METHOD.encode(),
        b":authority": client._authority,
        b"content-type": b"application/grpc",
        b"te": b"trailers",
        b"grpc-accept-encoding": b"identity",
        b"user-agent": b"test/1",
        b"grpc-timeout": b"1500000u",
        b"x-user": b"ada",
    }


async def test_split_padded_and_interleaved_frames_are_reassembled() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        sid = request.sid
        block = peer.encoder.encode(OK_HEADERS)
        peer.send(frame(w.PING, 0, 0, b"12345678"))
        peer.send(frame(w.HEADERS, w.PADDED, sid, b"\x02" + block[:2] + b"\x00\x00"))
        peer.send(frame(w.CONTINUATION, w.END_HEADERS, sid, block[2:]))
        message = grpc_message(MESSAGE)
        peer.send(frame(w.DATA, w.PADDED, sid, b"\x03" + message[:4] + b"\x00" * 3))
        peer.send(frame(w.DATA, 0, sid, message[4:]))
        peer.headers(sid, OK_TRAILERS, end=True)

    server = ScriptedServer(respond)
    async with client_of(server) as client:
        outcome = await call(client)
        await asyncio.sleep(0.05)

    assert (outcome.code, outcome.body) == (grpc.StatusCode.OK, MESSAGE)
    assert server.peers[0].pings_acked == [b"12345678"]


async def test_a_frame_inside_a_header_block_is_a_protocol_error() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        block = peer.encoder.encode(OK_HEADERS)
        peer.send(frame(w.HEADERS, 0, request.sid, block[:2]))
        peer.send(frame(w.PING, 0, 0, b"12345678"))  # RFC 9113 §6.10: CONTINUATION only
        peer.send(frame(w.CONTINUATION, w.END_HEADERS, request.sid, block[2:]))

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client)

    assert (outcome.code, outcome.message) == (
        grpc.StatusCode.INTERNAL,
        "upstream broke the HTTP/2 protocol: a header block left unfinished",
    )


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        (
            [(b":status", b"503"), (b"content-type", b"text/plain")],
            grpc.StatusCode.UNAVAILABLE,
            "Received http2 header with status: 503",
        ),
        (
            [*OK_HEADERS, (b"grpc-status", b"7"), (b"grpc-message", b"no%20way")],
            grpc.StatusCode.PERMISSION_DENIED,
            "no way",
        ),
        (OK_HEADERS, grpc.StatusCode.UNKNOWN, "upstream sent no grpc-status"),
    ],
)
async def test_trailers_only_answers(
    fields: list[tuple[bytes, bytes]], code: grpc.StatusCode, message: str
) -> None:
    async def respond(peer: Peer, request: Request) -> None:
        peer.headers(request.sid, fields, end=True)

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client)

    assert (outcome.code, outcome.message) == (code, message)


async def test_a_refused_stream_goes_to_grpc_and_others_resets_are_errors() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        code = w.REFUSED_STREAM if request.body.endswith(b"refuse") else w.CANCEL
        peer.send(frame(w.RST_STREAM, 0, request.sid, code.to_bytes(4, "big")))

    async with client_of(ScriptedServer(respond)) as client:
        assert await client.connect()
        refused = await client.unary(METHOD, b"refuse", 5, ())
        cancelled = await call(client, b"cancel")

    assert refused is None
    assert (cancelled.code, cancelled.message) == (
        grpc.StatusCode.CANCELLED,
        "Received RST_STREAM with error code 8",
    )


async def test_goaway_hands_unprocessed_calls_to_grpc_and_a_new_connection_follows() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        if peer is server.peers[0]:
            peer.send(frame(w.GOAWAY, 0, 0, bytes(8)))  # last stream 0: none processed
        else:
            peer.answer(request.sid)

    server = ScriptedServer(respond)
    async with client_of(server) as client:
        assert await client.connect()
        first = await client.unary(METHOD, b"", 5, ())
        second = await call(client)

    assert first is None
    assert second.code == grpc.StatusCode.OK
    assert server.connections == 2


async def test_a_lost_connection_is_unavailable_in_grpcs_words() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        peer.writer.transport.abort()

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client)

    assert (outcome.code, outcome.message) == (grpc.StatusCode.UNAVAILABLE, "Socket closed")


async def test_an_oversized_frame_closes_the_connection_and_fails_its_calls() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        peer.send(w.frame_header(w.DEFAULT_MAX_FRAME + 1, w.DATA, 0, request.sid))

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client)
        await asyncio.sleep(0.05)
        reconnected = await client.connect()

    assert outcome.code == grpc.StatusCode.INTERNAL
    assert outcome.message == "upstream broke the HTTP/2 protocol: a frame of 16385 bytes"
    assert reconnected


async def test_deadline_resets_the_stream_and_cancellation_too() -> None:
    server = ScriptedServer(lambda peer, request: asyncio.sleep(30))
    async with client_of(server) as client:
        outcome = await call(client, timeout=0.1)
        assert await client.connect()
        task = asyncio.create_task(client.unary(METHOD, b"", None, ()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)

    assert (outcome.code, outcome.message) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "Deadline Exceeded",
    )
    assert server.peers[0].resets == [(1, w.CANCEL), (3, w.CANCEL)]


async def test_a_response_over_the_limit_is_resource_exhausted() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        peer.headers(request.sid, OK_HEADERS)
        peer.send(frame(w.DATA, 0, request.sid, grpc_message(b"x" * 200)))
        peer.headers(request.sid, OK_TRAILERS, end=True)

    server = ScriptedServer(respond)
    async with client_of(server, max_message_bytes=100) as client:
        outcome = await call(client)
        await asyncio.sleep(0.05)

    assert (outcome.code, outcome.message) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Received message larger than max (200 vs. 100)",
    )
    assert server.peers[0].resets == [(1, w.CANCEL)]


async def test_response_metadata_over_the_limit_is_resource_exhausted() -> None:
    async def respond(peer: Peer, request: Request) -> None:
        block = peer.encoder.encode([*OK_HEADERS, (b"x-big", b"v" * 20_000)], huffman=False)
        peer.send(frame(w.HEADERS, 0, request.sid, block[:10_000]))
        peer.send(frame(w.CONTINUATION, w.END_HEADERS, request.sid, block[10_000:]))

    async with client_of(ScriptedServer(respond)) as client:
        outcome = await call(client)

    assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert outcome.message.startswith("received metadata size exceeds hard limit")


@pytest.mark.parametrize(
    ("settings", "body"),
    [
        (w.settings_payload([(w.MAX_CONCURRENT_STREAMS, 0)]), b""),
        (w.settings_payload([(w.INITIAL_WINDOW_SIZE, 10)]), b"x" * 10),
        (b"", b"x" * w.DEFAULT_WINDOW),  # over the connection's first window
    ],
)
async def test_what_the_upstreams_limits_forbid_goes_to_grpc(settings: bytes, body: bytes) -> None:
    async def respond(peer: Peer, request: Request) -> None:
        peer.answer(request.sid)  # pragma: no cover (never sent)

    async with client_of(ScriptedServer(respond, settings)) as client:
        assert await client.connect()
        assert await client.unary(METHOD, body, 5, ()) is None
        assert await client.unary(METHOD, b"", 5, (("X-Bad", "key"),)) is None


async def test_a_silent_or_garbage_upstream_never_gets_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(h2channel, "CONNECT_TIMEOUT", 0.2)
    silent = ScriptedServer(lambda peer, request: asyncio.sleep(0), hello=False)
    async with client_of(silent) as client:
        assert not await client.connect()
        assert await client.unary(METHOD, b"", 5, ()) is None  # grpc.aio words it (T70)

    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http1, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = FastUnary(f"127.0.0.1:{port}", max_message_bytes=100, user_agent="t")
    try:
        assert not await client.connect()
        assert await client.unary(METHOD, b"", 5, ()) is None  # grpc.aio words it (T71)
    finally:
        await client.close()
        server.close()


def test_the_client_runs_on_uvloop_too() -> None:
    """`--loop uvloop`: uvloop's transports are not asyncio.Transport subclasses."""
    import uvloop  # a dev dependency (P30)

    async def respond(peer: Peer, request: Request) -> None:
        peer.answer(request.sid)

    async def scenario() -> UnaryOutcome:
        async with client_of(ScriptedServer(respond)) as client:
            return await call(client)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcome = runner.run(scenario())

    assert (outcome.code, outcome.body) == (grpc.StatusCode.OK, MESSAGE)
