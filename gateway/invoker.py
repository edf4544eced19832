"""How the REST door reaches the service: the `Invoker` protocol.

Two implementations exist: a local one that runs the server's call pipeline in-process
(`server/local_invoker.py`, the default of `taskgate serve`) and `GrpcInvoker` over a grpc.aio
channel (`gateway/upstream.py`, for `taskgate gateway --upstream`). The gateway never imports
either; it only sees this protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message

from taskgate.rpc import CallOptions, Metadata


@dataclass(slots=True)
class UnaryResult:
    """A successful unary call: the response and the response metadata."""

    response: Message
    header_metadata: Metadata = field(default_factory=tuple)
    trailing_metadata: Metadata = field(default_factory=tuple)


class Invoker(Protocol):
    """Calls an RPC by its full method name ("/pkg.Service/Method").

    Failures raise `taskgate.rpc.RpcStatusError`; nothing else may escape except
    `asyncio.CancelledError` (the HTTP client went away, so the call is cancelled).
    """

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        """Run a unary call."""
        ...

    def server_stream(
        self, method: str, request: Message, options: CallOptions
    ) -> AsyncIterator[Message]:
        """Run a server-streaming call; iterate to receive the responses."""
        ...
