"""Server-streaming responses: NDJSON (the grpc-gateway envelope), SSE, or raw HttpBody chunks.

An error before the first message propagates, so the caller answers it as a normal error with
its HTTP status; after the first message it becomes a last line `{"error": <Status>}` (NDJSON)
or an `event: error` (SSE) on the 200 response (docs/decisions.md T45).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from taskgate.gateway.errors import status_from_exception, status_to_dict
from taskgate.gateway.json_codec import DEFAULT_BINARY_CONTENT_TYPE, render_response
from taskgate.gateway.json_fast import dump_json
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import Route
from taskgate.rpc import RpcStatus

log = logging.getLogger(__name__)

NDJSON_CONTENT_TYPE = "application/x-ndjson"
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
