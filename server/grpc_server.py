"""The gRPC door: a grpc.aio server whose handlers run the call pipeline."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from taskgate.rpc import (
    MAX_MESSAGE_BYTES,
    STATUS_DETAILS_KEY,
    CallOptions,
    RpcStatus,
    RpcStatusError,
    code_number,
)
from taskgate.server.pipeline import CallPipeline, Method


def create_grpc_server(pipeline: CallPipeline, *, reuse_port: bool = False) -> grpc.aio.Server:
    """A server with every pipeline method registered (ports and reflection are added later).

    SO_REUSEPORT only for --workers: otherwise a second taskgate on the same port must fail to
    start rather than silently share the port.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
    )
    by_service: dict[str, dict[str, grpc.RpcMethodHandler[Message, Message]]] = {}
    for full_name, method in pipeline.methods.items():
        service, name = full_name.lstrip("/").split("/")
        by_service.setdefault(service, {})[name] = _method_handler(pipeline, full_name, method)
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items())
    )
    return server


def _method_handler(
    pipeline: CallPipeline, full_name: str, method: Method
) -> grpc.RpcMethodHandler[Message, Message]:
    async def behavior(
        request: Message, context: grpc.aio.ServicerContext[Message, Message]
    ) -> Message:
        options = CallOptions(
            metadata=tuple(context.invocation_metadata() or ()),
            timeout=context.time_remaining(),
        )
        try:
            return await pipeline.call(full_name, request, options)
        except RpcStatusError as failure:
            status = failure.status
            await context.abort(status.code, status.message, _details_metadata(status))
            raise AssertionError("unreachable: abort raises") from None

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=method.request_type.FromString,
        response_serializer=method.response_type.SerializeToString,
    )


def _details_metadata(status: RpcStatus) -> tuple[tuple[str, bytes], ...]:
    if not status.details:
        return ()
    proto = status_pb2.Status(
        code=code_number(status.code), message=status.message, details=status.details
    )
    return ((STATUS_DETAILS_KEY, proto.SerializeToString()),)
