"""`GrpcInvoker`: the Invoker over a grpc.aio channel to an upstream, and the channel it uses.

The only place gateway/ calls the upstream's RPCs (discovery.py only asks reflection). It sends
and receives raw bytes through generic callables, decodes responses with classes from a
descriptor pool, and turns every `AioRpcError` into an `RpcStatusError` whose message never
carries Python or grpc-core text the caller can't act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Final

import grpc
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate import tracing
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.invoker import UnaryResult
from taskgate.rpc import (
    MAX_MESSAGE_BYTES,
    STATUS_DETAILS_KEY,
    CallOptions,
    RpcStatus,
    RpcStatusError,
)
from taskgate.tls import UpstreamTLS

log = logging.getLogger(__name__)

BAD_GATEWAY = 502

#: Keepalive stays off (grpc's client default); reconnect quickly once the upstream is back.
#: The message size limits (--max-message-bytes) are added by `open_upstream_channel`.
CHANNEL_OPTIONS: Final[Sequence[tuple[str, int]]] = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5000),
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
#: Plain words for the operator, by a phrase of grpc-core's text; the first match wins.
_TRANSPORT_REASONS: Final = (
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


def status_from_rpc_error(exc: grpc.aio.AioRpcError, upstream: str) -> RpcStatus:
    """The RpcStatus of a failed call, with details decoded from grpc-status-details-bin."""
    code, message = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and (reason := describe_unreachable(message)):
        message = f"upstream {upstream} is unavailable: {reason}"
    return RpcStatus(code, message, _status_details(exc.trailing_metadata()))


def _status_details(trailers: grpc.aio.Metadata | None) -> tuple[any_pb2.Any, ...]:
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return tuple(status_pb2.Status.FromString(value).details)
            except DecodeError:
                log.warning("ignoring an undecodable %s trailer", STATUS_DETAILS_KEY)
    return ()


def _serialize(request: Message) -> bytes:
    return request.SerializeToString()


class GrpcInvoker:
    """Calls "/pkg.Service/Method" on the upstream; response types come from `pool`."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        upstream: str,
        pool: descriptor_pool.DescriptorPool | None = None,
    ) -> None:
        self._channel = channel
        self._upstream = upstream
        self._pool = pool if pool is not None else descriptor_pool.Default()
        self._response_types: dict[str, type[Message]] = {}

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        response_type = self._response_type(method)
        call: grpc.aio.UnaryUnaryCall[Message, bytes]
        call = self._channel.unary_unary(method, request_serializer=_serialize)(
            request,
            timeout=options.timeout,
            metadata=tracing.outgoing_metadata(options.metadata),  # P13: the trace goes on
            wait_for_ready=False,
        )
        try:
            raw: bytes = await call
            header = await call.initial_metadata()
            trailer = await call.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            raise RpcStatusError(status_from_rpc_error(exc, self._upstream)) from None
        except asyncio.CancelledError:
            call.cancel()
            raise
        return UnaryResult(
            self._decode(method, response_type, raw), tuple(header or ()), tuple(trailer or ())
        )

    async def server_stream(
        self, method: str, request: Message, options: CallOptions
    ) -> AsyncIterator[Message]:
        response_type = self._response_type(method)
        call: grpc.aio.UnaryStreamCall[Message, bytes]
        call = self._channel.unary_stream(method, request_serializer=_serialize)(
            request,
            timeout=options.timeout,
            metadata=tracing.outgoing_metadata(options.metadata),  # P13: the trace goes on
            wait_for_ready=False,
        )
        try:
            while (raw := await call.read()) is not grpc.aio.EOF:
                yield self._decode(method, response_type, raw)
        except grpc.aio.AioRpcError as exc:
            raise RpcStatusError(status_from_rpc_error(exc, self._upstream)) from None
        finally:
            call.cancel()  # a no-op once the stream has ended; stops it if the consumer left

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
