"""`FastUnary`: the gateway's unary calls on one HTTP/2 connection run by the event loop
(docs/decisions.md P37).

grpc.aio hands every call to grpc-core's threads and back (a `sendmsg` and several thread
wake-ups per call, T93); this client writes each call as one HEADERS and one DATA frame from the
event loop and reads the answer in `data_received`, which took a quarter of the gateway's CPU
per request away (T94). It carries only what it can carry exactly as grpc.aio would, and says
so by returning None, upon which `GrpcInvoker` makes the same call through grpc.aio:

- no connection is up (yet): one is opened in the background, with backoff, while grpc.aio
  carries the calls and words every connection failure as before (T70–T73);
- a request that does not fit the upstream's flow-control windows now, needs more than one
  header frame, is larger than --max-message-bytes, or carries metadata gRPC would refuse;
- a stream the upstream refused unprocessed (REFUSED_STREAM, or past a GOAWAY's last stream).

Everything else ends here with grpc's code and words: the upstream's status, message, metadata
and details; DEADLINE_EXCEEDED by a local timer (and RST_STREAM); CANCELLED sent upstream as
RST_STREAM when the caller goes away; a lost connection as "Socket closed" (UNAVAILABLE); a
response over --max-message-bytes as RESOURCE_EXHAUSTED. Plaintext upstreams only: with
--upstream-tls every call goes through grpc.aio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

import grpc
import hpack

from taskgate.gateway import h2wire as w
from taskgate.rpc import Metadata

log = logging.getLogger(__name__)

#: Seconds a connection (TCP, then the upstream's SETTINGS) may take before it is given up.
CONNECT_TIMEOUT = 5.0
#: Seconds between failed connection attempts: doubling from the first to the last.
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 5.0
#: What this client accepts as one response header list (grpc-core's hard limit) and as a
#: header block still waiting for its CONTINUATION frames (a bound on memory, nothing more).
MAX_HEADER_LIST: Final = 16_384
MAX_PENDING_BLOCK: Final = 65_536
#: Entries of decoded header blocks remembered while the decoder's table does not change.
MAX_MEMO: Final = 1024
#: The message every call on a lost connection ends with: grpc-core's, so the gateway words it
#: as it words grpc.aio's (upstream.describe_unreachable).
SOCKET_CLOSED: Final = "Socket closed"

_OUR_SETTINGS: Final = w.settings_payload(
    (
        (w.ENABLE_PUSH, 0),
        (w.INITIAL_WINDOW_SIZE, w.MAX_WINDOW),
        (w.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
    )
)
_HELLO: Final = (
    w.PREFACE
    + w.frame_header(len(_OUR_SETTINGS), w.SETTINGS, 0, 0)
    + _OUR_SETTINGS
    + w.frame_header(4, w.WINDOW_UPDATE, 0, 0)
    + (w.MAX_WINDOW - w.DEFAULT_WINDOW).to_bytes(4, "big")
)
_SETTINGS_ACK: Final = w.frame_header(0, w.SETTINGS, w.ACK, 0)


def _goaway(error_code: int) -> bytes:
    """GOAWAY with last stream id 0: this side never accepts streams."""
    return w.frame_header(8, w.GOAWAY, 0, 0) + bytes(4) + error_code.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class UnaryOutcome:
    """A finished call: its code and message, metadata, and the response message (OK only)."""

    code: grpc.StatusCode
    message: str
    header_metadata: Metadata = ()
    trailing_metadata: Metadata = ()
    body: bytes = b""


#: What a stream ends with when grpc.aio should make the call instead (never processed).
RETRY: Final = UnaryOutcome(grpc.StatusCode.UNAVAILABLE, "refused unprocessed")
_Result = asyncio.Future[UnaryOutcome]


class _Stream:
    __slots__ = ("data", "future", "headers", "timer")

    def __init__(self, future: _Result) -> None:
        self.future = future
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.data = bytearray()
        self.timer: asyncio.TimerHandle | None = None


class _ProtocolError(Exception):
    def __init__(self, error_code: int, why: str) -> None:
        super().__init__(why)
        self.error_code = error_code


class H2Connection(asyncio.Protocol):
    """One client connection: unary streams only, every request sent whole."""

    def __init__(
        self,
        authority: bytes,
        user_agent: bytes,
        max_receive: int,
        on_lost: Callable[[H2Connection], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._authority, self._user_agent = authority, user_agent
        self._max_receive = max_receive
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._decoder = hpack.Decoder()
        self._memo: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._buffer = b""
        self._pending: tuple[int, int, bytearray] | None = None  # HEADERS awaiting CONTINUATION
        self._prefixes: dict[str, bytes] = {}
        self._table_update = True  # TABLE_SIZE_ZERO goes first in the next header block
        self._next_id = 1
        self._streams: dict[int, _Stream] = {}
        self._received = 0  # DATA bytes not yet given back with a WINDOW_UPDATE
        self.closed = False
        #: GOAWAY received (or stream ids used up): no new streams; ends when the last does.
        self.draining = False
        # The peer's limits on what this side sends.
        self._send_window = w.DEFAULT_WINDOW
        self._peer_initial_window = w.DEFAULT_WINDOW
        self._peer_max_frame = w.DEFAULT_MAX_FRAME
        self._peer_max_streams = 2**31
        #: Done when the peer's first SETTINGS arrives (the connection can carry calls).
        self.ready: asyncio.Future[None] = loop.create_future()

    @property
    def usable(self) -> bool:
        return self.ready.done() and not self.closed and not self.draining

    # --- sending ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (asyncio's, or uvloop's, which is not an asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(_HELLO)

    def _send(self, frames: bytes) -> None:
        """Frames written at the end of this loop iteration, together with all others queued
        in it: calls started by several requests become one write."""
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(frames)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.closed:
            self._transport.write(b"".join(out))

    def start(
        self, method: str, fields: bytes, body: bytes, timeout: float | None
    ) -> tuple[int, _Result] | None:
        """Send one unary call (`fields`: its grpc-timeout and metadata fields); its stream id
        and the future of its outcome, or None if it cannot be sent whole now."""
        message_size = len(body) + 5
        prefix = self._prefixes.get(method)
        if prefix is None:
            prefix = w.request_prefix(method.encode("ascii"), self._authority, self._user_agent)
            self._prefixes[method] = prefix
        block = prefix + fields
        if self._table_update:
            block = w.TABLE_SIZE_ZERO + block
        if (
            not self.usable
            or len(self._streams) >= self._peer_max_streams
            or message_size > self._send_window
            or message_size > self._peer_initial_window
            or len(block) > self._peer_max_frame
        ):
            return None
        self._table_update = False
        sid = self._next_id
        self._next_id += 2
        if self._next_id > w.MAX_STREAM_ID:
            self.draining = True  # ids used up: the client opens another connection
        future: _Result = self._loop.create_future()
        stream = _Stream(future)
        self._streams[sid] = stream
        frames = [w.frame_header(len(block), w.HEADERS, w.END_HEADERS, sid), block]
        message = b"\x00" + len(body).to_bytes(4, "big") + body
        step = self._peer_max_frame
        for offset in range(0, message_size, step):
            chunk = message[offset : offset + step]
            last = offset + step >= message_size
            frames += (w.frame_header(len(chunk), w.DATA, w.END_STREAM if last else 0, sid), chunk)
        self._send_window -= message_size
        self._send(b"".join(frames))
        if timeout is not None:
            stream.timer = self._loop.call_later(timeout, self._expire, sid)
        return sid, future

    def cancel(self, sid: int) -> None:
        """The caller went away: the upstream sees CANCELLED (RST_STREAM CANCEL)."""
        stream = self._streams.pop(sid, None)
        if stream is not None:
            self._end(stream, None)
            self._reset(sid, w.CANCEL)

    def _reset(self, sid: int, error_code: int) -> None:
        self._send(w.frame_header(4, w.RST_STREAM, 0, sid) + error_code.to_bytes(4, "big"))

    def _expire(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is not None:
            stream.timer = None
            self._end(stream, UnaryOutcome(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
            self._reset(sid, w.CANCEL)

    def close(self) -> None:
        """GOAWAY(NO_ERROR) and close; calls in flight end as on a lost connection."""
        if self._transport is not None and not self.closed:
            self._flush()
            self._transport.write(_goaway(w.NO_ERROR))
            self._transport.close()

    # --- receiving -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        view = self._buffer + data if self._buffer else data
        pos, end = 0, len(view)
        try:
            while end - pos >= 9:
                length = view[pos] << 16 | view[pos + 1] << 8 | view[pos + 2]
                if length > w.DEFAULT_MAX_FRAME:  # this side never raised SETTINGS_MAX_FRAME_SIZE
                    raise _ProtocolError(w.FRAME_SIZE_ERROR, f"a frame of {length} bytes")
                stop = pos + 9 + length
                if stop > end:
                    break
                frame_type, flags = view[pos + 3], view[pos + 4]
                sid = int.from_bytes(view[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = view[pos + 9 : stop]
                pos = stop
                if self._pending is not None and frame_type != w.CONTINUATION:
                    raise _ProtocolError(w.PROTOCOL_ERROR, "a header block left unfinished")
                if frame_type == w.DATA:
                    self._data(sid, flags, payload)
                elif frame_type == w.HEADERS:
                    self._headers(sid, flags, payload)
                else:
                    self._control(frame_type, flags, sid, payload)
        except _ProtocolError as exc:
            self._abort(exc.error_code, str(exc))
            return
        self._buffer = view[pos:] if pos < end else b""
        if self._received > w.MAX_WINDOW // 2:
            self._send(w.frame_header(4, w.WINDOW_UPDATE, 0, 0) + self._received.to_bytes(4, "big"))
            self._received = 0

    def _data(self, sid: int, flags: int, payload: bytes) -> None:
        self._received += len(payload)
        stream = self._streams.get(sid)
        if stream is None:
            return  # a stream this side has reset: its flow-control credit is counted above
        if flags & w.PADDED:
            if not payload or payload[0] >= len(payload):
                raise _ProtocolError(w.PROTOCOL_ERROR, "bad padding")
            payload = payload[1 : len(payload) - payload[0]]
        stream.data += payload
        if len(stream.data) > self._max_receive + 5:
            size = int.from_bytes(stream.data[1:5], "big")
            del self._streams[sid]
            message = f"Received message larger than max ({size} vs. {self._max_receive})"
            self._end(stream, UnaryOutcome(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
            self._reset(sid, w.CANCEL)
        elif flags & w.END_STREAM:  # a gRPC response ends with trailers, never with DATA
            self._finish(sid, stream, [])

    def _headers(self, sid: int, flags: int, payload: bytes) -> None:
        if flags & w.PADDED:
            if not payload or payload[0] >= len(payload):
                raise _ProtocolError(w.PROTOCOL_ERROR, "bad padding")
            payload = payload[1 : len(payload) - payload[0]]
        if flags & w.PRIORITY_FLAG:
            payload = payload[5:]
        if flags & w.END_HEADERS:
            self._header_block(sid, flags, payload)
        else:
            self._pending = (sid, flags, bytearray(payload))

    def _continuation(self, sid: int, flags: int, payload: bytes) -> None:
        pending = self._pending
        if pending is None or pending[0] != sid:
            raise _ProtocolError(w.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        pending[2].extend(payload)
        if len(pending[2]) > MAX_PENDING_BLOCK:
            raise _ProtocolError(w.ENHANCE_YOUR_CALM, "a header block too large")
        if flags & w.END_HEADERS:
            self._pending = None
            self._header_block(sid, pending[1], bytes(pending[2]))

    def _header_block(self, sid: int, flags: int, block: bytes) -> None:
        fields = self._decode(block)  # always: the decoder's table must follow the peer's
        stream = self._streams.get(sid)
        if stream is None:
            return
        if sum(len(k) + len(v) + 32 for k, v in fields) > MAX_HEADER_LIST:
            del self._streams[sid]
            message = f"received metadata size exceeds hard limit ({MAX_HEADER_LIST} bytes)"
            self._end(stream, UnaryOutcome(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
            self._reset(sid, w.CANCEL)
        elif stream.headers is None and not flags & w.END_STREAM:
            stream.headers = fields
        else:
            self._finish(sid, stream, fields)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The block's fields; a block seen before while the decoder's table stayed the same
        decodes to the same fields (the upstream's answers to one method repeat byte for byte
        once its encoder has indexed them)."""
        known = self._memo.get(block)
        if known is not None:
            return known
        before = self._table_state()
        try:
            fields = [(bytes(k), bytes(v)) for k, v in self._decoder.decode(block, raw=True)]
        except hpack.HPACKError as exc:
            raise _ProtocolError(w.COMPRESSION_ERROR, f"undecodable headers ({exc})") from None
        if before == self._table_state():
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            self._memo[bytes(block)] = fields
        else:
            self._memo.clear()  # the table changed: indexed fields may mean something else
        return fields

    def _table_state(self) -> tuple[int, int, int]:
        """What changes whenever the decoder's dynamic table does: an insertion puts a new entry
        first, an eviction or a size update changes the count or the size."""
        table = self._decoder.header_table
        entries = table.dynamic_entries
        return len(entries), id(entries[0]) if entries else 0, table.maxsize

    def _finish(self, sid: int, stream: _Stream, trailers: list[tuple[bytes, bytes]]) -> None:
        del self._streams[sid]
        code, message = w.call_status(stream.headers, trailers)
        headers = stream.headers or ()
        body = b""
        if code == grpc.StatusCode.OK:
            unpacked = w.unpack_message(stream.data, self._max_receive)
            if isinstance(unpacked, bytes):
                body = unpacked
            else:
                code, message = unpacked
        outcome = UnaryOutcome(
            code,
            message,
            w.response_metadata(headers),
            w.response_metadata(trailers),
            body,
        )
        self._end(stream, outcome)

    def _end(self, stream: _Stream, outcome: UnaryOutcome | None) -> None:
        """A stream (already out of `_streams`) is over: its timer stops, its caller hears."""
        if stream.timer is not None:
            stream.timer.cancel()
        if outcome is not None and not stream.future.done():
            stream.future.set_result(outcome)
        self._maybe_done()

    def _control(self, frame_type: int, flags: int, sid: int, payload: bytes) -> None:
        if frame_type == w.CONTINUATION:
            self._continuation(sid, flags, payload)
        elif frame_type == w.SETTINGS:
            if not flags & w.ACK:
                self._settings(payload)
        elif frame_type == w.PING:
            if not flags & w.ACK:
                self._send(w.frame_header(8, w.PING, w.ACK, 0) + payload[:8])
        elif frame_type == w.WINDOW_UPDATE:
            if sid == 0:
                increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                self._send_window = min(self._send_window + increment, w.MAX_WINDOW)
        elif frame_type == w.RST_STREAM:
            self._stream_reset(sid, int.from_bytes(payload[:4], "big"))
        elif frame_type == w.GOAWAY:
            self._goaway(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
        elif frame_type == w.PUSH_PROMISE:
            raise _ProtocolError(w.PROTOCOL_ERROR, "PUSH_PROMISE, though push is disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).

    def _settings(self, payload: bytes) -> None:
        pairs = w.parse_settings(payload)
        if pairs is None:
            raise _ProtocolError(w.FRAME_SIZE_ERROR, "a SETTINGS frame of a bad length")
        for ident, value in pairs:
            if ident == w.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif ident == w.INITIAL_WINDOW_SIZE:
                if value > w.MAX_WINDOW:
                    raise _ProtocolError(w.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                self._peer_initial_window = value
            elif ident == w.MAX_FRAME_SIZE:
                if not w.DEFAULT_MAX_FRAME <= value < 2**24:
                    raise _ProtocolError(w.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self._peer_max_frame = value
            elif ident == w.HEADER_TABLE_SIZE:
                self._table_update = True
        self._send(_SETTINGS_ACK)
        if not self.ready.done():
            self.ready.set_result(None)

    def _stream_reset(self, sid: int, error_code: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is None:
            return
        if error_code == w.REFUSED_STREAM:
            outcome = RETRY  # never processed: grpc.aio may send it again
        else:
            code = {
                w.CANCEL: grpc.StatusCode.CANCELLED,
                w.ENHANCE_YOUR_CALM: grpc.StatusCode.RESOURCE_EXHAUSTED,
            }.get(error_code, grpc.StatusCode.INTERNAL)
            outcome = UnaryOutcome(code, f"Received RST_STREAM with error code {error_code}")
        self._end(stream, outcome)

    def _goaway(self, last_stream_id: int) -> None:
        self.draining = True
        for sid in [sid for sid in self._streams if sid > last_stream_id]:
            self._end(self._streams.pop(sid), RETRY)  # not processed: grpc.aio sends it again
        self._on_lost(self)
        self._maybe_done()

    def _maybe_done(self) -> None:
        """A draining connection closes once its last stream is over."""
        if self.draining and not self._streams and self._transport is not None and not self.closed:
            self._flush()
            self._transport.close()

    def _abort(self, error_code: int, why: str) -> None:
        """A connection error (RFC 9113 §5.4.1): GOAWAY with its code, then close."""
        # Before its SETTINGS it is not an HTTP/2 server at all, which grpc.aio reports.
        level = logging.WARNING if self.ready.done() else logging.DEBUG
        log.log(level, "closing the connection to the upstream: it sent %s", why)
        if self._transport is not None and not self.closed:
            self._flush()
            self._transport.write(_goaway(error_code))
            self._transport.close()
        self._fail_all(grpc.StatusCode.INTERNAL, f"upstream broke the HTTP/2 protocol: {why}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(grpc.StatusCode.UNAVAILABLE, SOCKET_CLOSED)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before its SETTINGS"))

    def _fail_all(self, code: grpc.StatusCode, message: str) -> None:
        self.closed = True
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            self._end(stream, UnaryOutcome(code, message))
        self._on_lost(self)


class FastUnary:
    """Unary calls to a plaintext upstream `target` ("HOST:PORT") on one event-loop HTTP/2
    connection while one is up (see the module's docstring for what falls back to grpc.aio)."""

    def __init__(self, target: str, *, max_message_bytes: int, user_agent: str) -> None:
        host, _, port = target.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._authority = target.encode("ascii")
        self._user_agent = user_agent.encode("ascii")
        self._max_bytes = max_message_bytes
        self._connection: H2Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._closing = False

    def _usable(self) -> H2Connection | None:
        """The connection if one is up; else None, and one is opened in the background unless
        an attempt is under way or the last failed too recently."""
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if (
            not self._closing
            and self._connecting is None
            and time.monotonic() >= self._next_attempt
        ):
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return None

    def connect_soon(self) -> None:
        """Start opening the connection in the background (if none is up or being opened)."""
        self._usable()

    async def connect(self) -> bool:
        """Open the connection now (at start-up, once the upstream is known to be up), so that
        the first calls need not go through grpc.aio; whether it is up."""
        self._usable()
        if (attempt := self._connecting) is not None:
            await asyncio.wait({attempt})
        return self._usable() is not None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: H2Connection(
                        self._authority, self._user_agent, self._max_bytes, self._lost
                    ),
                    self._host,
                    self._port,
                ),
                CONNECT_TIMEOUT,
            )
            try:
                await asyncio.wait_for(asyncio.shield(connection.ready), CONNECT_TIMEOUT)
            except BaseException:
                connection.close()
                raise
        except (OSError, TimeoutError, ConnectionError) as exc:
            delay = self._backoff = min(max(self._backoff * 2, BACKOFF_FIRST), BACKOFF_MAX)
            self._next_attempt = time.monotonic() + delay
            log.debug("no event-loop connection to the upstream (%r); next in %.2fs", exc, delay)
        else:
            self._backoff = 0.0
            if self._closing:
                connection.close()
            else:
                self._connection = connection
        finally:
            self._connecting = None

    def _lost(self, connection: H2Connection) -> None:
        if self._connection is connection:
            self._connection = None

    async def unary(
        self,
        method: str,
        body: bytes,
        timeout: float | None,  # noqa: ASYNC109 (the call's deadline: a local timer and grpc-timeout)
        metadata: Sequence[tuple[str, str | bytes]],
    ) -> UnaryOutcome | None:
        """The outcome of calling `method` ("/pkg.Service/Method") with the serialized `body`,
        or None: make this call with grpc.aio."""
        connection = self._usable()
        if connection is None or len(body) > self._max_bytes:
            return None
        fields = w.metadata_fields(metadata)
        if fields is None:
            return None
        if timeout is not None:
            if timeout <= 0:
                return UnaryOutcome(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            fields = w.literal(b"grpc-timeout", w.grpc_timeout(timeout)) + fields
        started = connection.start(method, fields, body, timeout)
        if started is None:
            return None
        sid, future = started
        try:
            outcome = await future
        except asyncio.CancelledError:
            connection.cancel(sid)
            raise
        return None if outcome is RETRY else outcome

    async def close(self) -> None:
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait({self._connecting})
        if self._connection is not None:
            self._connection.close()
            self._connection = None
