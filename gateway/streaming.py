"""Streams over REST: streamed responses (NDJSON in the grpc-gateway envelope, SSE, or raw
HttpBody chunks) and streamed requests (NDJSON, one request message per line).

An error before the first message propagates, so the caller answers it as a normal error with
its HTTP status; after the first message it becomes a last line `{"error": <Status>}` (NDJSON)
or an `event: error` (SSE) on the 200 response (docs/decisions.md T45). The call's header
metadata goes out as `Grpc-Metadata-*` headers with the first message (T61).

A client-streaming or bidirectional request body is read line by line as it arrives
(`LineSplitter`, pure), each line becoming one request message as a unary body would (T62);
each line is bounded by the body limits, not the whole stream (T63). Such a body may say it is
`application/x-ndjson` or `application/jsonl` as well as JSON (media.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from aiohttp import web
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from taskgate.gateway.body import (
    REQUEST_TIMEOUT,
    UNSUPPORTED_MEDIA_TYPE,
    BodyStream,
    coding_of,
    too_large,
)
from taskgate.gateway.errors import TranscodeError, status_from_exception, status_to_dict
from taskgate.gateway.invoker import ResponseStream
from taskgate.gateway.json_codec import DEFAULT_BINARY_CONTENT_TYPE, render_response
from taskgate.gateway.json_fast import dump_json
from taskgate.gateway.media import NDJSON_MEDIA_TYPE
from taskgate.gateway.metadata import headers_from_metadata
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import Route, RouteMatch
from taskgate.rpc import RpcStatus

log = logging.getLogger(__name__)

NDJSON_CONTENT_TYPE = NDJSON_MEDIA_TYPE
SSE_CONTENT_TYPE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class _Framing:
    """How messages and a late error are written for one stream."""

    kind: str  # "ndjson", "sse" or "raw"
    content_type: str
    route: Route
    options: GatewayOptions

    @property
    def pool(self) -> descriptor_pool.DescriptorPool:
        return self.route.pool

    def message(self, message: Message) -> bytes:
        body = render_response(
            message, self.route.response_body_descriptor, self.options, self.pool
        ).body
        if self.kind == "raw":
            return body
        if self.kind == "sse":
            return b"data: " + body + b"\n\n"
        return b'{"result":' + body + b"}\n"

    def error(self, status: RpcStatus) -> bytes:
        """The in-band error of an NDJSON or SSE stream (a raw stream is cut short instead)."""
        body = dump_json(status_to_dict(status, "status", self.pool))
        if self.kind == "sse":
            return b"event: error\ndata: " + body + b"\n\n"
        return b'{"error":' + body + b"}\n"


async def stream_response(
    request: web.Request,
    route: Route,
    stream: AsyncIterator[Message],
    options: GatewayOptions,
) -> web.StreamResponse:
    """Relay `stream` to the client, flushing each message as it arrives."""
    iterator = aiter(stream)
    try:
        first = await _next(iterator)  # an error here is answered as a plain error response
        framing = _framing(route, request.headers.get("Accept", ""), first, options)
        response = web.StreamResponse(status=200, headers={"Content-Type": framing.content_type})
        if isinstance(stream, ResponseStream):  # T61: header metadata before the first chunk
            for name, value in headers_from_metadata(await stream.header_metadata()):
                response.headers.add(name, value)
        await response.prepare(request)
        try:
            completed = await _relay(response, framing, first, iterator)
        except ConnectionResetError:
            log.debug("client went away during a stream of %s", route.rpc)
            return response
        if not completed and request.transport is not None:
            # A raw HttpBody stream that failed midway: close the connection without the final
            # chunk, so the client sees a truncated body rather than a complete-looking one.
            request.transport.close()
        return response
    finally:
        await _close(iterator)


async def _relay(
    response: web.StreamResponse,
    framing: _Framing,
    first: Message | None,
    iterator: AsyncIterator[Message],
) -> bool:
    """Write every message; False when a raw stream failed midway (nowhere to say so)."""
    message = first
    while message is not None:
        await response.write(framing.message(message))
        try:
            message = await _next(iterator)
        except Exception as exc:  # the 200 status is sent: the error goes in-band
            status = status_from_exception(exc)
            if framing.kind == "raw":
                log.warning(
                    "HttpBody stream of %s failed midway: %s", framing.route.rpc, status.message
                )
                return False
            await response.write(framing.error(status))
            break
    await response.write_eof()
    return True


async def _next(iterator: AsyncIterator[Message]) -> Message | None:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None


async def _close(iterator: AsyncIterator[Message]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _framing(route: Route, accept: str, first: Message | None, options: GatewayOptions) -> _Framing:
    if route.response_is_http_body:
        rendered = (
            None
            if first is None
            else render_response(first, route.response_body_descriptor, options)
        )
        content_type = DEFAULT_BINARY_CONTENT_TYPE if rendered is None else rendered.content_type
        return _Framing("raw", content_type, route, options)
    if SSE_CONTENT_TYPE in accept:
        return _Framing("sse", SSE_CONTENT_TYPE, route, options)
    content_type = NDJSON_CONTENT_TYPE if NDJSON_CONTENT_TYPE in accept else "application/json"
    return _Framing("ndjson", content_type, route, options)


def unservable(route: Route) -> str | None:
    """Why a client-streaming or bidirectional route cannot be served (T62), or None."""
    if route.body_field is None:
        return "a streaming request needs a body (its rule names none)"
    if route.request_is_http_body:
        return "a streaming request of HttpBody has no line framing"
    return None


class LineSplitter:
    """Splits an NDJSON body into its lines as the bytes arrive. Pure.

    Blank lines (whitespace only) are skipped and a final line needs no newline; a line (or the
    unfinished rest) longer than `limit` bytes is 413, as a unary body over the limit is.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        #: the unfinished line so far (grown in place: a long line costs no quadratic copying).
        self._rest = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        first, newline, tail = data.partition(b"\n")
        self._rest += first
        if len(self._rest) > self._limit:
            raise too_large(self._limit)
        if not newline:
            return []
        *lines, rest = [bytes(self._rest), *tail.split(b"\n")]
        self._rest = bytearray(rest)
        if len(self._rest) > self._limit:
            raise too_large(self._limit)
        return self._kept(lines)

    def finish(self) -> list[bytes]:
        rest, self._rest = bytes(self._rest), bytearray()
        return self._kept([rest])

    def _kept(self, lines: list[bytes]) -> list[bytes]:
        if any(len(line) > self._limit for line in lines):
            raise too_large(self._limit)
        return [line for line in lines if line.strip()]


async def request_messages(
    content: BodyStream,
    match: RouteMatch,
    query: str,
    *,
    content_type: str,
    content_encoding: str,
    options: GatewayOptions,
) -> AsyncIterator[Message]:
    """The request messages of a streamed body, each built as soon as its line has arrived:
    path variables and query parameters apply to every one (T62). Each line must arrive within
    `options.body_timeout` seconds of the one before (408), and be at most
    `options.max_body_bytes` long (413); the stream as a whole has no limit (T63)."""
    if coding_of(content_encoding) is not None:
        raise TranscodeError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "a streaming request body cannot be compressed: send it with no Content-Encoding",
            http_status=UNSUPPORTED_MEDIA_TYPE,
        )
    splitter = LineSplitter(options.max_body_bytes)
    lines: deque[bytes] = deque()
    ended = False
    while True:
        if not lines and not ended:
            ended = await _read_lines(content, splitter, lines, options.body_timeout)
        if not lines:
            return
        yield build_request(match, query, lines.popleft(), content_type, options)


async def _read_lines(
    content: BodyStream, splitter: LineSplitter, into: deque[bytes], seconds: float
) -> bool:
    """Read until at least one line is complete, or the body ends (True)."""
    try:
        async with asyncio.timeout(seconds):
            while not into:
                chunk = await content.readany()
                if not chunk:
                    into.extend(splitter.finish())
                    return True
                into.extend(splitter.feed(chunk))
    except TimeoutError:
        raise TranscodeError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the next request message did not arrive within {seconds:g} seconds",
            http_status=REQUEST_TIMEOUT,
        ) from None
    return False
