"""The gRPC door: a grpc.aio server whose handlers run the call pipeline.

Bounded (docs/decisions.md P2, P3): messages either way up to --max-message-bytes (grpc refuses
a larger one from its length prefix, RESOURCE_EXHAUSTED), at most --max-concurrent-calls calls at
once (more are RESOURCE_EXHAUSTED at once, never queued), a connection that sends no HTTP/2
preface within HANDSHAKE_TIMEOUT_MS is closed, idle connections are closed after
MAX_CONNECTION_IDLE_MS, and a request that does not decode is INVALID_ARGUMENT in plain words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from taskgate import metrics, tracing
from taskgate.access import REQUEST_ID_KEY, log_call, request_id_from_metadata
from taskgate.rpc import (
    MAX_CONCURRENT_CALLS,
    MAX_MESSAGE_BYTES,
    STATUS_DETAILS_KEY,
    CallOptions,
    RpcStatus,
    RpcStatusError,
    code_number,
)
from taskgate.server.pipeline import CallPipeline, Method

#: A connection must complete its handshake and send the HTTP/2 preface and SETTINGS this fast.
HANDSHAKE_TIMEOUT_MS = 5_000
#: A connection with no call for this long gets GOAWAY (clients reconnect transparently).
MAX_CONNECTION_IDLE_MS = 60_000
#: Connections are recycled after this long (calls in flight get the grace below to finish), so
#: replicas added behind a load balancer get their share.
MAX_CONNECTION_AGE_MS = 30 * 60_000
MAX_CONNECTION_AGE_GRACE_MS = 30_000
#: While calls are active, a peer that does not answer a ping within the timeout is dropped.
KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
#: grpc's compression *level* (2: medium), not an algorithm: core picks gzip only for clients
#: whose grpc-accept-encoding lists it, and sends a message as is when it does not shrink (P12).
#: A per-call `set_compression` is not negotiated: an identity-only client would fail.
COMPRESSION_LEVEL = 2


def create_grpc_server(
    pipeline: CallPipeline,
    *,
    reuse_port: bool = False,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    max_concurrent_calls: int = MAX_CONCURRENT_CALLS,
) -> grpc.aio.Server:
    """A server with every pipeline method registered (ports and reflection are added later).

    SO_REUSEPORT only for --workers: otherwise a second taskgate on the same port must fail to
    start rather than silently share the port.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
            ("grpc.max_connection_idle_ms", MAX_CONNECTION_IDLE_MS),
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.default_compression_level", COMPRESSION_LEVEL),
        ],
        maximum_concurrent_rpcs=max_concurrent_calls,
    )
    by_service: dict[str, dict[str, grpc.RpcMethodHandler[Message | None, Message]]] = {}
    for full_name, method in pipeline.methods.items():
        service, name = full_name.lstrip("/").split("/")
        by_service.setdefault(service, {})[name] = _method_handler(pipeline, full_name, method)
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items())
    )
    return server


def _method_handler(
    pipeline: CallPipeline, full_name: str, method: Method
) -> grpc.RpcMethodHandler[Message | None, Message]:
    undecodable = f"the request is not a valid {method.request_type.DESCRIPTOR.full_name} message"
    span_name = full_name.lstrip("/")

    async def behavior(
        request: Message | None, context: grpc.aio.ServicerContext[Message | None, Message]
    ) -> Message:
        # P10, P11: counted, timed and logged here, as gateway/app.py does for REST.
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        received = context.invocation_metadata() or ()
        rid = request_id_from_metadata(received)
        metadata = (*(m for m in received if m[0] != REQUEST_ID_KEY), (REQUEST_ID_KEY, rid))
        # P13: a SERVER span continuing the caller's `traceparent` metadata, current meanwhile.
        traced = tracing.start_server_span(span_name, tracing.context_from_metadata(received))
        try:
            with metrics.in_flight(metrics.GRPC):
                if request is None:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(code, undecodable)
                    raise AssertionError("unreachable: abort raises")
                options = CallOptions(metadata=metadata, timeout=context.time_remaining())
                try:
                    return await pipeline.call(full_name, request, options)
                except RpcStatusError as failure:
                    status = failure.status
                    code = status.code
                    await context.abort(status.code, status.message, _details_metadata(status))
                    raise AssertionError("unreachable: abort raises") from None
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            seconds = time.perf_counter() - started
            metrics.observe_call(full_name, metrics.GRPC, code.name, seconds)
            log_call(metrics.GRPC, full_name, code.name, seconds, context.peer(), rid)
            traced.end(full_name, code.name)

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=_deserializer(method.request_type),
        response_serializer=method.response_type.SerializeToString,
    )


def _deserializer(request_type: type[Message]) -> Callable[[bytes], Message | None]:
    """Decode a request; None (→ INVALID_ARGUMENT) when the bytes are not one. Without this,
    grpc answers UNKNOWN naming DecodeError, and logs a traceback per call."""

    def deserialize(data: bytes) -> Message | None:
        try:
            return request_type.FromString(data)
        except Exception:  # DecodeError, and whatever else bad bytes make the parser raise
            return None

    return deserialize


def _details_metadata(status: RpcStatus) -> tuple[tuple[str, bytes], ...]:
    if not status.details:
        return ()
    proto = status_pb2.Status(
        code=code_number(status.code), message=status.message, details=status.details
    )
    return ((STATUS_DETAILS_KEY, proto.SerializeToString()),)
