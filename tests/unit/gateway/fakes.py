"""FakeInvoker: records each call and answers with canned responses, errors or streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from taskgate.gateway.invoker import UnaryResult
from taskgate.rpc import CallOptions

Outcome = UnaryResult | Message | BaseException | Callable[[Message], Message]


@dataclass
class RecordedCall:
    method: str
    request: Message
    options: CallOptions


@dataclass
class FakeInvoker:
    """Unary calls echo the request unless `unary_outcomes` says otherwise."""

    unary_outcomes: dict[str, Outcome] = field(default_factory=dict)
    stream_items: dict[str, Sequence[Message | BaseException]] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    #: when set, unary calls wait on it (cancellation and deadline tests).
    gate: asyncio.Event | None = None
    cancelled: bool = False
    stream_closed: bool = False
    #: when True, streams stay open after their items until cancelled.
    hold_streams: bool = False

    async def unary(self, method: str, request: Message, options: CallOptions) -> UnaryResult:
        self.calls.append(RecordedCall(method, request, options))
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        outcome = self.unary_outcomes.get(method, request)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, UnaryResult):
            return outcome
        if isinstance(outcome, Message):
            return UnaryResult(outcome)
        return UnaryResult(outcome(request))

    def server_stream(
        self, method: str, request: Message, options: CallOptions
    ) -> AsyncIterator[Message]:
        self.calls.append(RecordedCall(method, request, options))
        return self._stream(self.stream_items.get(method, ()))

    async def _stream(self, items: Sequence[Message | BaseException]) -> AsyncIterator[Message]:
        try:
            for item in items:
                await asyncio.sleep(0)
                if isinstance(item, BaseException):
                    raise item
                yield item
            if self.hold_streams:
                await asyncio.Event().wait()
        finally:
            self.stream_closed = True
