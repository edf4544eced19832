"""The REST door's default invoker: the call pipeline, in-process (no loopback gRPC hop).

It implements `gateway.invoker.Invoker`, so the gateway cannot tell it from `GrpcInvoker`; the
REST×gRPC parity tests prove the two doors answer alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import Message

from taskgate.gateway.invoker import ResponseStream, UnaryResult
from taskgate.rpc import CallOptions, RpcStatusError
from taskgate.server.pipeline import CallPipeline

#: What a gRPC upstream sends as response headers; grpc-gateway forwards it as
#: Grpc-Metadata-Content-Type, a small fingerprint of KFP's stack (docs/decisions.md K18).
RESPONSE_HEADERS = (("content-type", "application/grpc"),)


class LocalInvoker:
    """Runs unary calls through the pipeline (whose failures are already RpcStatusError).

    TaskService has no streaming method, so every streaming call is UNIMPLEMENTED, with the
    same header metadata a unary answer carries (T61); an annotated streaming method of another
    service would still get its route, answering 501 through this (T62).
    """

    def __init__(self, pipeline: CallPipeline) -> None:
        self._pipeline = pipeline

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        try:
            response = await self._pipeline.call(method, request, options)
        except RpcStatusError as error:  # T61: a failed call's answer carries them too
            error.header_metadata = error.header_metadata or RESPONSE_HEADERS
            raise
        return UnaryResult(response, header_metadata=RESPONSE_HEADERS)

    def server_stream(self, method: str, request: Message, options: CallOptions) -> ResponseStream:
        return ResponseStream(_Unimplemented(method, "server-streaming"))

    async def client_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> UnaryResult:
        raise _unimplemented_error(method, "client-streaming")

    def bidi_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> ResponseStream:
        return ResponseStream(_Unimplemented(method, "bidirectional streaming"))


def _unimplemented_error(method: str, kind: str) -> RpcStatusError:
    error = RpcStatusError.of(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not a {kind} method")
    error.header_metadata = RESPONSE_HEADERS
    return error


class _Unimplemented:
    """A stream whose first step fails with UNIMPLEMENTED."""

    def __init__(self, method: str, kind: str) -> None:
        self._method, self._kind = method, kind

    def __aiter__(self) -> _Unimplemented:
        return self

    async def __anext__(self) -> Message:
        raise _unimplemented_error(self._method, self._kind)
