"""The REST door's default invoker: the call pipeline, in-process (no loopback gRPC hop).

It implements `gateway.invoker.Invoker`, so the gateway cannot tell it from `GrpcInvoker`; the
REST×gRPC parity tests prove the two doors answer alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import Message

from taskgate.gateway.invoker import UnaryResult
from taskgate.rpc import CallOptions, RpcStatusError
from taskgate.server.pipeline import CallPipeline

#: What a gRPC upstream sends as response headers; grpc-gateway forwards it as
#: Grpc-Metadata-Content-Type, a small fingerprint of KFP's stack (docs/decisions.md K18).
RESPONSE_HEADERS = (("content-type", "application/grpc"),)


class LocalInvoker:
    """Runs unary calls through the pipeline (whose failures are already RpcStatusError)."""

    def __init__(self, pipeline: CallPipeline) -> None:
        self._pipeline = pipeline

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        response = await self._pipeline.call(method, request, options)
        return UnaryResult(response, header_metadata=RESPONSE_HEADERS)

    def server_stream(
        self, method: str, request: Message, options: CallOptions
    ) -> AsyncIterator[Message]:
        return _NotStreaming(method)


class _NotStreaming:
    """TaskService has no streaming method: iterating fails with UNIMPLEMENTED."""

    def __init__(self, method: str) -> None:
        self._method = method

    def __aiter__(self) -> _NotStreaming:
        return self

    async def __anext__(self) -> Message:
        raise RpcStatusError.of(
            grpc.StatusCode.UNIMPLEMENTED, f"{self._method} is not a server-streaming method"
        )
