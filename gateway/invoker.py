"""How the REST door reaches the service: the `Invoker` protocol.

Two implementations exist: a local one that runs the server's call pipeline in-process
(`server/local_invoker.py`, the default of `taskgate serve`) and `GrpcInvoker` over a grpc.aio
channel (`gateway/upstream.py`, for `taskgate gateway --upstream`). The gateway never imports
either; it only sees this protocol.

A streaming call's responses come as a `ResponseStream`: an async iterator of messages that can
also tell the call's header metadata, which the REST door sends as `Grpc-Metadata-*` headers
(docs/decisions.md T61). Client-streaming and bidirectional calls are `StreamingInvoker`, a
protocol of its own, so an invoker without them (a test fake) still is an `Invoker`: their routes
answer 501 through it (T62).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from google.protobuf.message import Message

from taskgate.rpc import CallOptions, Metadata


@dataclass(slots=True)
class UnaryResult:
    """A successful unary call: the response and the response metadata."""

    response: Message
    header_metadata: Metadata = field(default_factory=tuple)
    trailing_metadata: Metadata = field(default_factory=tuple)


class ResponseStream:
    """The responses of a server-streaming or bidirectional call, and its header metadata.

    Iterate it for the messages (failures raise `RpcStatusError`); `header_metadata()` is the
    call's initial metadata, known once the first message (or the end) has arrived. `aclose`
    ends the call if it is still running.
    """

    def __init__(
        self,
        messages: AsyncIterator[Message],
        header_metadata: Callable[[], Awaitable[Metadata]] | None = None,
    ) -> None:
        self._messages = messages
        self._header_metadata = header_metadata

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Message:
        return await anext(self._messages)

    async def header_metadata(self) -> Metadata:
        if self._header_metadata is None:
            return ()
        return tuple(await self._header_metadata())

    async def aclose(self) -> None:
        aclose = getattr(self._messages, "aclose", None)
        if aclose is not None:
            await aclose()


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
        """Run a server-streaming call; iterate to receive the responses (a `ResponseStream`
        carries the header metadata too)."""
        ...


@runtime_checkable
class StreamingInvoker(Invoker, Protocol):
    """An Invoker that also runs client-streaming and bidirectional calls.

    `requests` is consumed while the call runs; an exception it raises (a bad request line, a
    body that is too large or too slow) cancels the call and propagates as it is.
    """

    async def client_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> UnaryResult:
        """Send every request, then receive the one response."""
        ...

    def bidi_stream(
        self, method: str, requests: AsyncIterator[Message], options: CallOptions
    ) -> ResponseStream:
        """Send the requests while receiving the responses."""
        ...
