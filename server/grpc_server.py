"""The gRPC door: a grpc.aio server whose handlers run the call pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from taskgate.server.pipeline import CallContext, CallError, CallPipeline, Method

GRPC_DETAILS_KEY = "grpc-status-details-bin"
#: KFP's driver client accepts replies up to 100 MiB; accept requests as large.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024

GrpcBehavior = Callable[[Message, grpc.aio.ServicerContext[Message, Message]], Awaitable[Message]]


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
        call = CallContext(
            method=full_name,
            metadata=tuple(context.invocation_metadata() or ()),
            timeout=context.time_remaining(),
        )
        try:
            return await pipeline.call(request, call)
        except CallError as failure:
            await context.abort(failure.code, failure.message, _details_metadata(failure))
            raise AssertionError("unreachable: abort raises") from None

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=method.request_type.FromString,
        response_serializer=method.response_type.SerializeToString,
    )


def _details_metadata(failure: CallError) -> tuple[tuple[str, bytes], ...]:
    if not failure.details:
        return ()
    status = status_pb2.Status(
        code=failure.code.value[0], message=failure.message, details=failure.details
    )
    return ((GRPC_DETAILS_KEY, status.SerializeToString()),)
