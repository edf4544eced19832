"""`GrpcInvoker`: the Invoker over a grpc.aio channel to an upstream, and the channel it uses.

The only place gateway/ calls the upstream's RPCs (discovery.py only asks reflection). Unary
calls go through the event-loop client (h2channel.py, P37) when it can carry them; everything
else through grpc.aio's generic callables, raw bytes either way. Responses are decoded with
classes from a descriptor pool, and every failure (an `AioRpcError`, or a non-OK outcome of the
event-loop client) becomes an `RpcStatusError` whose message never carries Python or grpc-core
text the caller can't act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import grpc
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate import metrics, tracing
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.h2channel import FastUnary
from taskgate.gateway.h2channel import UnaryOutcome as FastOutcome
from taskgate.gateway.invoker import ResponseStream, UnaryResult
from taskgate.rpc import (
    MAX_MESSAGE_BYTES,
    STATUS_DETAILS_KEY,
    CallOptions,
    Metadata,
    RpcStatus,
    RpcStatusError,
)
from taskgate.tls import UpstreamTLS

log = logging.getLogger(__name__)

#: `taskgate_gateway_upstream_calls_total`, by the client that made each unary call (P37).
_BY_EVENT_LOOP = metrics.UPSTREAM_CALLS.labels("event-loop")
_BY_GRPCIO = metrics.UPSTREAM_CALLS.labels("grpcio")

BAD_GATEWAY = 502

#: Milliseconds a connection attempt may take, TCP and TLS and HTTP/2 handshakes included
#: (grpc's default is 20 s): an upstream that accepts and then says nothing is a 504 this soon
#: even for a call without a deadline (docs/decisions.md T70).
CONNECT_TIMEOUT_MS = 5000
#: The channel accepts only the identity encoding (bit 0 of grpc-core's enabled-algorithms set),
#: so an upstream that compresses for clients that accept it (as `taskgate serve` does, P12)
#: sends its responses as they are: compressing costs both ends CPU on a hop that is usually
#: loopback or one rack (docs/decisions.md T90).
IDENTITY_ONLY = 1
#: Keepalive stays off (grpc's client default); reconnect quickly once the upstream is back.
#: The message size limits (--max-message-bytes) are added by `open_upstream_channel`.
CHANNEL_OPTIONS: Final[Sequence[tuple[str, int]]] = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),  # grpc's name for the connect timeout
    ("grpc.compression_enabled_algorithms_bitset", IDENTITY_ONLY),
)
#: How grpc-core words "no connection" (as opposed to an UNAVAILABLE the service chose to send).
_TRANSPORT_PREFIXES: Final = (
    "failed to connect to all addresses",
    "errors resolving",
    "dns resolution failed",
    "socket closed",
    "connection reset",
    "connections to all backends failing",
)
#: grpc-core's words (lower-cased) for a peer that accepts TCP but never sends its SETTINGS frame,
#: and for one that answers with something other than HTTP/2 (docs/decisions.md T70, T71).
_HANDSHAKE_TIMEOUT: Final = "before receiving settings frame"
_HTTP1_PEER: Final = "trying to connect an http1.x server"
_NOT_HTTP2: Final = "failed parsing http/2"
#: grpc-core's words when the upstream refuses the request's metadata (T72).
_METADATA_TOO_LARGE: Final = "received metadata size exceeds"
#: Connection failures where the upstream answered but cannot be used as configured: waiting
#: for it will not help (docs/decisions.md T73).
_LASTING_PHRASES: Final = (
    _HTTP1_PEER,
    _NOT_HTTP2,
    "certificate_verify_failed",
    "hostname verification",
    "peer name",
    "handshake",
)
REQUEST_HEADER_FIELDS_TOO_LARGE = 431
#: A call's header or trailing metadata: grpc.aio's, or the event-loop client's (h2channel.py).
_Trailers = grpc.aio.Metadata | Metadata | None

#: Plain words for the operator, by a phrase of grpc-core's text; the first match wins.
_TRANSPORT_REASONS: Final = (
    (_HANDSHAKE_TIMEOUT, "it accepted the connection but never completed the HTTP/2 handshake"),
    (_HTTP1_PEER, "it answered with HTTP/1.x, not gRPC"),
    (_NOT_HTTP2, "it does not speak HTTP/2 (gRPC)"),
    ("certificate_verify_failed", "TLS handshake failed: its certificate is not trusted"),
    ("hostname verification", "TLS handshake failed: its certificate does not name it"),
    ("peer name", "TLS handshake failed: its certificate does not name it"),
    ("handshake", "TLS handshake failed"),
    ("connection refused", "connection refused"),
    ("resolv", "name resolution failed"),
    ("timed out", "connection timed out"),
    ("socket closed", "connection closed"),
    ("connection reset", "connection reset"),
)


def open_upstream_channel(
    target: str, *, max_message_bytes: int = MAX_MESSAGE_BYTES, tls: UpstreamTLS | None = None
) -> grpc.aio.Channel:
    """A channel to `target` ("HOST:PORT"); connects lazily and reconnects by itself. Plaintext,
    or TLS with `tls` (--upstream-tls): the upstream's certificate must chain to --upstream-ca
    (grpc's default roots without it) and name --upstream-server-name (the host without it).
    Every call on the upstream goes through it: reflection, health checks and the calls.

    Messages either way are limited to `max_message_bytes` (--max-message-bytes): a larger
    request is refused before it is sent, a larger response is RESOURCE_EXHAUSTED."""
    limits = (
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    )
    if tls is None:
        return grpc.aio.insecure_channel(target, options=(*limits, *CHANNEL_OPTIONS))
    return grpc.aio.secure_channel(
        target,
        tls.channel_credentials(),
        options=(*limits, *CHANNEL_OPTIONS, *tls.channel_options()),
    )


def describe_unreachable(details: str) -> str | None:
    """Plain words for a grpc-core connection failure, or None if `details` is not one.

    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: Failed to
    connect to remote host: Connection refused" gives "connection refused".
    """
    lowered = details.lower()
    if not lowered.startswith(_TRANSPORT_PREFIXES):
        return None
    return next(
        (words for phrase, words in _TRANSPORT_REASONS if phrase in lowered), "cannot connect"
    )


def unreachable_is_lasting(details: str) -> bool:
    """Whether a grpc-core connection failure says the upstream answered but cannot be used as
    configured (its TLS certificate, or not HTTP/2 at all), rather than "not there (yet)"."""
    lowered = details.lower()
    return lowered.startswith(_TRANSPORT_PREFIXES) and any(
        phrase in lowered for phrase in _LASTING_PHRASES
    )


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """What a failed upstream call becomes: its code, message and, where the code's usual HTTP
    status would mislead, its own (None: the code.proto table)."""

    code: grpc.StatusCode
    message: str
    http_status: int | None = None


def classify_failure(code: grpc.StatusCode, details: str, upstream: str) -> UpstreamFailure:
    """The failure a client sees for grpc's (code, details) of a call on `upstream`
    (docs/decisions.md T70–T72): grpc-core's transport text becomes plain words naming it."""
    lowered = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and (reason := describe_unreachable(details)):
        if _HANDSHAKE_TIMEOUT in lowered:  # T70: no answer in time is a gateway timeout
            return UpstreamFailure(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"upstream {upstream} did not answer: {reason}"
            )
        if _HTTP1_PEER in lowered or _NOT_HTTP2 in lowered:  # T71: it answered, in garbage
            return UpstreamFailure(
                grpc.StatusCode.INTERNAL,
                f"upstream {upstream} is not a gRPC server: {reason}",
                BAD_GATEWAY,
            )
        return UpstreamFailure(code, f"upstream {upstream} is unavailable: {reason}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _METADATA_TOO_LARGE in lowered:
        return UpstreamFailure(  # T72
            code,
            f"upstream {upstream} refused the request's metadata as too large; send fewer or "
            "smaller Authorization and Grpc-Metadata-* headers",
            REQUEST_HEADER_FIELDS_TOO_LARGE,
        )
    return UpstreamFailure(code, details)


def call_error(
    code: grpc.StatusCode,
    details: str,
    trailers: _Trailers,
    upstream: str,
) -> RpcStatusError:
    """The exception a failed upstream call raises, details decoded from grpc-status-details-bin:
    an RpcStatusError, or a TranscodeError where the HTTP status is not the code's usual one
    (502, 431)."""
    failure = classify_failure(code, details, upstream)
    status_details = _status_details(trailers)
    if failure.http_status is None:
        return RpcStatusError(RpcStatus(failure.code, failure.message, status_details))
    return TranscodeError(
        failure.code, failure.message, http_status=failure.http_status, details=status_details
    )


def _status_details(trailers: _Trailers) -> tuple[any_pb2.Any, ...]:
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return tuple(status_pb2.Status.FromString(value).details)
            except DecodeError:
                log.warning("ignoring an undecodable %s trailer", STATUS_DETAILS_KEY)
    return ()


#: Makes the types of these error details known to the pool errors are rendered with, where it
#: can (discovery.DetailTypes.resolve).
DetailResolver = Callable[[Sequence[any_pb2.Any]], Awaitable[None]]


def _serialize(request: Message) -> bytes:
    return request.SerializeToString()


class GrpcInvoker:
    """Calls "/pkg.Service/Method" on the upstream; response types come from `pool`. Unary calls
    go through `fast` (the event-loop client, P37) when it can carry them, else through
    `channel`, which carries everything else."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        upstream: str,
        pool: descriptor_pool.DescriptorPool | None = None,
        resolve_details: DetailResolver | None = None,
        fast: FastUnary | None = None,
    ) -> None:
        self._channel = channel
        self._fast = fast
        self._upstream = upstream
        self._pool = pool if pool is not None else descriptor_pool.Default()
        self._response_types: dict[str, type[Message]] = {}
        #: T74: adds unknown error-detail types to the pool before the error is rendered.
        self._resolve_details = resolve_details

    async def _failure(self, exc: grpc.aio.AioRpcError) -> RpcStatusError:
        """The error a failed grpc.aio call raises (`_error`)."""
        code, details = exc.code(), exc.details() or ""
        return await self._error(code, details, exc.initial_metadata(), exc.trailing_metadata())

    async def _error(
        self, code: grpc.StatusCode, details: str, header: _Trailers, trailer: _Trailers
    ) -> RpcStatusError:
        """The error a failed call raises (`call_error`), its detail types resolved, with the
        call's header and trailing metadata (T61: the keys gRPC keeps for itself, such as
        grpc-status-details-bin, stay behind)."""
        error = call_error(code, details, trailer, self._upstream)
        if self._resolve_details is not None and error.status.details:
            await self._resolve_details(error.status.details)
        error.header_metadata = tuple(header or ())
        error.trailing_metadata = _forwarded(trailer)
        return error

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        response_type = self._response_type(method)
        metadata = tracing.outgoing_metadata(options.metadata)  # P13: the trace goes on
        if self._fast is not None:
            body = request.SerializeToString()
            outcome = await self._fast.unary(method, body, options.timeout, metadata)
            if outcome is not None:
                _BY_EVENT_LOOP.inc()
                return await self._fast_result(method, response_type, outcome)
        _BY_GRPCIO.inc()
        call: grpc.aio.UnaryUnaryCall[Message, bytes]
        call = self._channel.unary_unary(method, request_serializer=_serialize)(
            request, timeout=options.timeout, metadata=metadata, wait_for_ready=False
        )
        try:
            raw: bytes = await call
            header = await call.initial_metadata()
            trailer = await call.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            raise await self._failure(exc) from None
        except asyncio.CancelledError:
            call.cancel()
            raise
        return UnaryResult(
            self._decode(method, response_type, raw), tuple(header or ()), _forwarded(trailer)
        )

    async def _fast_result(
        self, method: str, response_type: type[Message], outcome: FastOutcome
    ) -> UnaryResult:
        """A call `fast` carried, as grpc.aio's would be: the result, or its error."""
        header, trailer = outcome.header_metadata, outcome.trailing_metadata
        if outcome.code != grpc.StatusCode.OK:
            raise await self._error(outcome.code, outcome.message, header, trailer)
        response = self._decode(method, response_type, outcome.body)
        return UnaryResult(response, header, _forwarded(trailer))

    def server_stream(self, method: str, request: Message, options: CallOptions) -> ResponseStream:
        started = _StartedCall()

        def start() -> grpc.aio.UnaryStreamCall[Message, bytes]:
            call: grpc.aio.UnaryStreamCall[Message, bytes]
            call = self._channel.unary_stream(method, request_serializer=_serialize)(
                request,
                timeout=options.timeout,
                metadata=tracing.outgoing_metadata(options.metadata),  # P13: the trace goes on
                wait_for_ready=False,
            )
            return call

        return ResponseStream(self._read_responses(method, started, start), started.header_metadata)

    async def client_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> UnaryResult:
        """T62: each request is written as it comes; a failing `requests` cancels the call."""
        response_type = self._response_type(method)
        call: grpc.aio.StreamUnaryCall[Message, bytes]
        call = self._channel.stream_unary(method, request_serializer=_serialize)(
            timeout=options.timeout,
            metadata=tracing.outgoing_metadata(options.metadata),  # P13: the trace goes on
            wait_for_ready=False,
        )
        try:
            await _write_requests(call, requests)
            raw: bytes = await call
            header = await call.initial_metadata()
            trailer = await call.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            raise await self._failure(exc) from None
        except BaseException:  # a bad request line, the client gone: the call ends here
            call.cancel()
            raise
        return UnaryResult(
            self._decode(method, response_type, raw), tuple(header or ()), _forwarded(trailer)
        )

    def bidi_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> ResponseStream:
        """T62: requests are written by a task of their own while the responses are read."""
        started = _StartedCall()

        def start() -> grpc.aio.StreamStreamCall[Message, bytes]:
            call: grpc.aio.StreamStreamCall[Message, bytes]
            call = self._channel.stream_stream(method, request_serializer=_serialize)(
                timeout=options.timeout,
                metadata=tracing.outgoing_metadata(options.metadata),  # P13: the trace goes on
                wait_for_ready=False,
            )
            started.writer = asyncio.create_task(_write_requests(call, requests))
            return call

        return ResponseStream(self._read_responses(method, started, start), started.header_metadata)

    async def _read_responses(
        self,
        method: str,
        started: _StartedCall,
        start: Callable[[], _ReadableCall],
    ) -> AsyncIterator[Message]:
        response_type = self._response_type(method)
        call = start()
        started.call = call
        try:
            while (raw := await call.read()) is not grpc.aio.EOF:
                yield self._decode(method, response_type, raw)
            started.raise_writer_failure()
        except grpc.aio.AioRpcError as exc:
            started.raise_writer_failure()  # the call failed because its requests did
            raise await self._failure(exc) from None
        except asyncio.CancelledError:
            started.raise_writer_failure()  # cancelled by the writer, not by our caller
            raise
        finally:
            call.cancel()  # a no-op once the stream has ended; stops it if the consumer left
            await started.stop_writer()

    def _response_type(self, method: str) -> type[Message]:
        if (known := self._response_types.get(method)) is not None:
            return known
        service, _, name = method.lstrip("/").partition("/")
        try:
            descriptor = self._pool.FindServiceByName(service).methods_by_name[name]
        except KeyError:
            raise RpcStatusError.of(
                grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method}"
            ) from None
        response_type = message_factory.GetMessageClass(descriptor.output_type)
        self._response_types[method] = response_type
        return response_type

    def _decode(self, method: str, response_type: type[Message], raw: object) -> Message:
        try:
            if not isinstance(raw, bytes):
                raise DecodeError(f"expected bytes, got {type(raw).__name__}")
            return response_type.FromString(raw)
        except DecodeError:
            log.warning("undecodable response from %s to %s", self._upstream, method)
            message = f"upstream {self._upstream} sent a malformed response to {method}"
            # 502 Bad Gateway: the upstream, not the gateway, misbehaved.
            raise TranscodeError(
                grpc.StatusCode.INTERNAL, message, http_status=BAD_GATEWAY
            ) from None


#: A streaming call the responses are read from.
_ReadableCall = grpc.aio.UnaryStreamCall[Message, bytes] | grpc.aio.StreamStreamCall[Message, bytes]
_WritableCall = grpc.aio.StreamUnaryCall[Message, bytes] | grpc.aio.StreamStreamCall[Message, bytes]


class _StartedCall:
    """A streaming call once started: its initial metadata, and the task writing its requests
    (bidirectional calls)."""

    def __init__(self) -> None:
        self.call: _ReadableCall | None = None
        self.writer: asyncio.Task[None] | None = None

    async def header_metadata(self) -> Metadata:
        if self.call is None:
            return ()
        return tuple(await self.call.initial_metadata() or ())

    def raise_writer_failure(self) -> None:
        """The writer's own failure (a bad request line, too large, too slow), if it had one;
        an `AioRpcError` is the call's, which the reader reports itself."""
        writer = self.writer
        if writer is None or not writer.done() or writer.cancelled():
            return
        failure = writer.exception()
        if failure is not None and not isinstance(failure, grpc.aio.AioRpcError):
            self.writer = None
            raise failure

    async def stop_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if not writer.done():
            writer.cancel()
            await asyncio.wait({writer})  # never raises, so a cancellation of ours stays ours
        if not writer.cancelled():
            writer.exception()  # retrieved: reported by raise_writer_failure or not at all


async def _write_requests(call: _WritableCall, requests: AsyncIterator[Message]) -> None:
    """Write every request, then half-close; a failing `requests` cancels the call."""
    try:
        async for request in requests:
            await call.write(request)
        await call.done_writing()
    except asyncio.InvalidStateError:
        return  # the call is over already: its status tells what happened
    except grpc.aio.AioRpcError:
        raise
    except BaseException:
        call.cancel()
        raise


def _forwarded(trailer: _Trailers) -> Metadata:
    """Trailing metadata without the keys gRPC keeps for itself (T60)."""
    return tuple((key, value) for key, value in trailer or () if not key.startswith("grpc-"))
