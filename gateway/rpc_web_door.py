"""gRPC-Web and Connect calls on the HTTP port, beside REST (docs/decisions.md T80-T87).

`classify` picks these calls out (a POST to `/pkg.Service/Method`, a method of a served service,
with a gRPC-Web or Connect Content-Type) as `app.py`'s `handle` receives them, before
admission, so the in-flight gauge, the metrics and the access line name their door; they then
go through the same admission as REST (request id, span, `--max-concurrent-calls`, whose
refusal `refuse` answers in the call's protocol), and everything else about the port stays as
it was. `serve` reads the body within the REST door's bounds (body.py), builds the request
metadata and deadline of its protocol, runs the call through the same `Invoker` (in-process
for `serve`, the upstream channel for `gateway`) and writes the answer in its protocol, errors
included: nothing here raises past `serve` except cancellation, so an error never turns into
the REST door's JSON.

Client-streaming and bidirectional methods are answered UNIMPLEMENTED: over HTTP/1.1 neither
protocol can carry them, and the protocols' own half-duplex forms are not served (T87).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from aiohttp import web
from google.protobuf import descriptor, message_factory
from google.protobuf import descriptor_pool as descriptor_pool_module
from google.protobuf.message import DecodeError, Message

from taskgate import metrics
from taskgate.access import REQUEST_ID_KEY
from taskgate.gateway import connect, grpc_web
from taskgate.gateway.body import read_body
from taskgate.gateway.connect import ConnectContentType
from taskgate.gateway.envelope import (
    COMPRESSED,
    HEADER_BYTES,
    frame,
    gunzip,
    headers_from_metadata,
    metadata_from_headers,
    split_frames,
)
from taskgate.gateway.errors import TranscodeError, http_status_for, status_from_exception
from taskgate.gateway.grpc_web import WebContentType
from taskgate.gateway.invoker import Invoker
from taskgate.gateway.metadata import parse_grpc_timeout
from taskgate.gateway.options import GatewayOptions
from taskgate.rpc import CallOptions, Metadata, RpcStatus

OK = RpcStatus(grpc.StatusCode.OK, "")
UNSUPPORTED_MEDIA_TYPE = 415


@dataclass(frozen=True, slots=True)
class WebCall:
    """A request this door serves: its metrics door, its method and its protocol's variant."""

    door: str
    method: descriptor.MethodDescriptor
    kind: WebContentType | ConnectContentType

    @property
    def full_method(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def classify(
    http_method: str,
    path: str,
    content_type: str,
    methods: dict[str, descriptor.MethodDescriptor],
) -> WebCall | None:
    """This door's call, or None: the request is REST's."""
    if http_method != "POST":
        return None
    method = methods.get(path)
    if method is None:
        return None
    web_kind = grpc_web.parse_content_type(content_type)
    if web_kind is not None:
        return WebCall(metrics.GRPC_WEB, method, web_kind)
    connect_kind = connect.parse_content_type(content_type)
    if connect_kind is not None:
        return WebCall(metrics.CONNECT, method, connect_kind)
    return None


@dataclass(frozen=True, slots=True)
class Context:
    """What `serve` needs of the gateway's state."""

    invoker: Invoker
    options: GatewayOptions
    #: resolves `Any` error details (None: the method's own pool, then the default one).
    pool: descriptor_pool_module.DescriptorPool | None
    request_id: str | None


async def serve(
    request: web.Request, call: WebCall, context: Context
) -> tuple[web.StreamResponse, str]:
    """The answer, and the gRPC code it carries (the access line's and the metrics')."""
    if isinstance(call.kind, WebContentType):
        return await _serve_grpc_web(request, call, call.kind, context)
    return await _serve_connect(request, call, call.kind, context)


async def refuse(request: web.Request, call: WebCall, error: TranscodeError) -> web.StreamResponse:
    """A call turned away before anything of it is read (`--max-concurrent-calls`), answered
    in its protocol with the error's headers (`Retry-After`): gRPC-Web's trailer frame (T81),
    Connect's error JSON with its HTTP status (T82) or its end-of-stream message (T83)."""
    status, kind = error.status, call.kind
    if isinstance(kind, ConnectContentType) and not kind.streaming:
        return _connect_error(error, None)
    stream = web.StreamResponse(status=200, headers=error.headers)
    writer: _BinaryWriter | _TextWriter
    if isinstance(kind, WebContentType):
        stream.content_type = kind.response_content_type
        writer = _TextWriter(stream) if kind.text else _BinaryWriter(stream)
        last = grpc_web.trailer_frame(status)
    else:
        stream.content_type = kind.content_type
        writer = _BinaryWriter(stream)
        last = frame(connect.END_STREAM_FLAG, connect.end_stream_message(status, (), None))
    await _finish(request, stream, writer, last, status)
    return stream


# --- gRPC-Web -----------------------------------------------------------------------------


async def _serve_grpc_web(
    request: web.Request, call: WebCall, kind: WebContentType, context: Context
) -> tuple[web.StreamResponse, str]:
    response = web.StreamResponse(status=200)
    response.content_type = kind.response_content_type
    writer = _TextWriter(response) if kind.text else _BinaryWriter(response)
    status = OK
    trailing: Metadata = ()
    try:
        _require_half_duplex_free(call.method)
        timeout_text = request.headers.get("grpc-timeout")
        timeout = None if timeout_text is None else parse_grpc_timeout(timeout_text)
        options = _call_options(request, call, context, timeout)
        body = await _read(request, context.options, text=kind.text)
        if kind.text:
            body = grpc_web.decode_text_body(body)
        payload = _one_message(body, request.headers.get("grpc-encoding", ""), context.options)
        message = _parse_proto(call.method, payload)
        if call.method.server_streaming:
            stream = context.invoker.server_stream(call.full_method, message, options)
            status = await _relay_stream(stream, response, request, writer, "proto", None)
        else:
            result = await context.invoker.unary(call.full_method, message, options)
            for name, value in headers_from_metadata(result.header_metadata):
                response.headers.add(name, value)
            await response.prepare(request)
            await writer.write(frame(0, result.response.SerializeToString()))
            trailing = result.trailing_metadata
    except Exception as exc:  # every failure goes in the trailer frame; CancelledError passes
        status = status_from_exception(exc)
        trailing = getattr(exc, "trailing_metadata", ())
        if not response.prepared:
            for name, value in headers_from_metadata(getattr(exc, "header_metadata", ())):
                response.headers.add(name, value)
    last = grpc_web.trailer_frame(status, trailing)
    return response, await _finish(request, response, writer, last, status)


class _BinaryWriter:
    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def write(self, data: bytes) -> None:
        await self._response.write(data)

    async def finish(self) -> None:
        return None


class _TextWriter:
    """base64 as one unbroken string: bytes that do not fill a 3-byte group wait for the next
    write, so no padding appears before the end."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self._pending = b""

    async def write(self, data: bytes) -> None:
        data = self._pending + data
        whole = len(data) - len(data) % 3
        self._pending = data[whole:]
        if whole:
            await self._response.write(base64.b64encode(data[:whole]))

    async def finish(self) -> None:
        if self._pending:
            await self._response.write(base64.b64encode(self._pending))
            self._pending = b""


# --- Connect ------------------------------------------------------------------------------


async def _serve_connect(
    request: web.Request, call: WebCall, kind: ConnectContentType, context: Context
) -> tuple[web.StreamResponse, str]:
    if kind.streaming != call.method.server_streaming and not call.method.client_streaming:
        return _unsupported_media_type(call), grpc.StatusCode.INVALID_ARGUMENT.name
    if kind.streaming:
        return await _connect_stream(request, call, kind, context)
    return await _connect_unary(request, call, kind, context)


def _unsupported_media_type(call: WebCall) -> web.Response:
    """A Connect Content-Type of the wrong stream type: 415, naming the ones that fit."""
    prefix = "application/connect+" if call.method.server_streaming else "application/"
    accepted = f"{prefix}json, {prefix}proto"
    status = RpcStatus(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{call.full_method} takes {accepted}",
    )
    return web.Response(
        status=UNSUPPORTED_MEDIA_TYPE,
        body=connect.error_body(status, None),
        content_type=connect.ERROR_CONTENT_TYPE,
        headers={"Accept-Post": accepted},
    )


async def _connect_unary(
    request: web.Request, call: WebCall, kind: ConnectContentType, context: Context
) -> tuple[web.StreamResponse, str]:
    pool = call.method.containing_service.file.pool
    try:
        _require_half_duplex_free(call.method)
        connect.check_protocol_version(request.headers.get(connect.PROTOCOL_VERSION_HEADER))
        timeout = connect.parse_timeout(request.headers.get(connect.TIMEOUT_HEADER))
        options = _call_options(request, call, context, timeout)
        connect.check_unary_encoding(request.headers.get("Content-Encoding", ""))
        body = await _read(request, context.options, framed=False)
        message = _new_request(call.method)
        connect.decode_message(kind.codec, body, message, pool)
        result = await context.invoker.unary(call.full_method, message, options)
        response = web.Response(
            status=200,
            body=connect.encode_message(kind.codec, result.response, pool),
            content_type=kind.content_type,
        )
        for name, value in headers_from_metadata(result.header_metadata):
            response.headers.add(name, value)
        for name, value in connect.trailer_headers(result.trailing_metadata):
            response.headers.add(name, value)
        return response, "OK"
    except Exception as exc:  # rendered in Connect's error shape; CancelledError passes
        status = status_from_exception(exc)
        return _connect_error(exc, context.pool or pool, status), status.code.name


def _connect_error(
    exc: Exception,
    pool: descriptor_pool_module.DescriptorPool | None,
    status: RpcStatus | None = None,
) -> web.Response:
    """A failed Connect unary call (T82): the error JSON with its HTTP status, the failed call's
    metadata as headers and `Trailer-*` headers, and the gateway's own error headers."""
    if status is None:
        status = status_from_exception(exc)
    response = web.Response(
        status=http_status_for(status.code),
        body=connect.error_body(status, pool),
        content_type=connect.ERROR_CONTENT_TYPE,
    )
    for name, value in headers_from_metadata(getattr(exc, "header_metadata", ())):
        response.headers.add(name, value)
    for name, value in connect.trailer_headers(getattr(exc, "trailing_metadata", ())):
        response.headers.add(name, value)
    if isinstance(exc, TranscodeError):
        response.headers.update(exc.headers)
    return response


async def _connect_stream(
    request: web.Request, call: WebCall, kind: ConnectContentType, context: Context
) -> tuple[web.StreamResponse, str]:
    pool = call.method.containing_service.file.pool
    response = web.StreamResponse(status=200)
    response.content_type = kind.content_type
    writer = _BinaryWriter(response)
    status = OK
    trailing: Metadata = ()
    try:
        _require_half_duplex_free(call.method)
        connect.check_protocol_version(request.headers.get(connect.PROTOCOL_VERSION_HEADER))
        timeout = connect.parse_timeout(request.headers.get(connect.TIMEOUT_HEADER))
        options = _call_options(request, call, context, timeout)
        encoding = request.headers.get(connect.STREAM_ENCODING_HEADER, "")
        connect.check_stream_encoding(encoding)
        body = await _read(request, context.options)
        payload = _one_message(body, encoding, context.options)
        message = _new_request(call.method)
        connect.decode_message(kind.codec, payload, message, pool)
        stream = context.invoker.server_stream(call.full_method, message, options)
        status = await _relay_stream(stream, response, request, writer, kind.codec, pool)
    except Exception as exc:  # in the end-of-stream message; CancelledError passes
        status = status_from_exception(exc)
        trailing = getattr(exc, "trailing_metadata", ())
        if isinstance(exc, TranscodeError) and not response.prepared:
            response.headers.update(exc.headers)  # Connect-Accept-Encoding
    end = connect.end_stream_message(status, trailing, context.pool or pool)
    last = frame(connect.END_STREAM_FLAG, end)
    return response, await _finish(request, response, writer, last, status)


# --- shared -------------------------------------------------------------------------------


async def _finish(
    request: web.Request,
    response: web.StreamResponse,
    writer: _BinaryWriter | _TextWriter,
    last: bytes,
    status: RpcStatus,
) -> str:
    """Write the last frame and end the response; the code the answer carries. A client that
    has gone away is CANCELLED, and nothing more is written."""
    try:
        if not response.prepared:
            await response.prepare(request)
        await writer.write(last)
        await writer.finish()
        await response.write_eof()
    except ConnectionResetError:
        return grpc.StatusCode.CANCELLED.name
    return status.code.name


async def _relay_stream(
    stream: AsyncIterator[Message],
    response: web.StreamResponse,
    request: web.Request,
    writer: _BinaryWriter | _TextWriter,
    codec: str,
    pool: descriptor_pool_module.DescriptorPool | None,
) -> RpcStatus:
    """Every message of `stream`, framed; the status it ended with. The headers (with the
    call's header metadata, when the stream tells it) go out with the first message."""
    try:
        async for message in stream:
            if not response.prepared:
                await _prepare_with_metadata(stream, response, request)
            await writer.write(frame(0, connect.encode_message(codec, message, pool)))
    except Exception as exc:
        return status_from_exception(exc)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if not response.prepared:
        await _prepare_with_metadata(stream, response, request)
    return OK


async def _prepare_with_metadata(
    stream: AsyncIterator[Message], response: web.StreamResponse, request: web.Request
) -> None:
    header_metadata = getattr(stream, "header_metadata", None)
    if header_metadata is not None:
        for name, value in headers_from_metadata(await header_metadata()):
            response.headers.add(name, value)
    await response.prepare(request)


def _require_half_duplex_free(method: descriptor.MethodDescriptor) -> None:
    if method.client_streaming:
        raise TranscodeError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"/{method.containing_service.full_name}/{method.name} is a client-streaming or "
            "bidirectional method, which gRPC-Web and Connect over HTTP/1.1 cannot call",
        )


def _call_options(
    request: web.Request, call: WebCall, context: Context, timeout: float | None
) -> CallOptions:
    if timeout is None and not call.method.server_streaming:
        timeout = context.options.default_timeout
    metadata = metadata_from_headers(request.headers.items())
    if context.request_id is not None:  # P11: passed on, in place of any the caller sent
        metadata = [m for m in metadata if m[0] != REQUEST_ID_KEY]
        metadata.append((REQUEST_ID_KEY, context.request_id))
    return CallOptions(metadata=tuple(metadata), timeout=timeout)


async def _read(
    request: web.Request, options: GatewayOptions, *, framed: bool = True, text: bool = False
) -> bytes:
    """The body within `--max-body-bytes` (plus its envelope, and base64's third in text
    mode) and `--body-timeout`; HTTP `Content-Encoding` undone as for REST."""
    if not request.body_exists:
        return b""
    limit = options.max_body_bytes + (HEADER_BYTES if framed else 0)
    if text:
        limit = (limit + 2) // 3 * 4
    return await read_body(
        request.content,
        content_encoding=request.headers.get("Content-Encoding", ""),
        content_length=request.content_length,
        limit=limit,
        seconds=options.body_timeout,
    )


def _one_message(body: bytes, encoding: str, options: GatewayOptions) -> bytes:
    """The one request message of an enveloped body (unary and server-streaming calls)."""
    limit = options.max_body_bytes
    envelopes = split_frames(body, limit)
    if len(envelopes) != 1 or envelopes[0].flags & ~COMPRESSED:
        raise TranscodeError.invalid(
            f"expected exactly one request message, got {len(envelopes)} frames"
        )
    envelope = envelopes[0]
    if not envelope.flags & COMPRESSED:
        return envelope.payload
    coding = encoding.strip().lower()
    if coding != "gzip":
        raise TranscodeError(
            grpc.StatusCode.UNIMPLEMENTED,
            f'unsupported message encoding "{coding[:32] or "identity"}": use gzip or identity',
        )
    return gunzip(envelope.payload, limit)


def _new_request(method: descriptor.MethodDescriptor) -> Message:
    return message_factory.GetMessageClass(method.input_type)()


def _parse_proto(method: descriptor.MethodDescriptor, payload: bytes) -> Message:
    message = _new_request(method)
    try:
        message.ParseFromString(payload)
    except DecodeError:
        raise TranscodeError.invalid(
            f"the request message is not a valid {method.input_type.full_name}"
        ) from None
    return message
