"""The call pipeline that both doors run: gRPC (grpc_server.py) and REST (local_invoker.py).

Whatever a gRPC interceptor would do happens here, once, for every call whichever door it came
through: deadline enforcement, error translation (ServiceError → status with KFP's `api.Error`
detail; anything unexpected → INTERNAL with no Python text), and one log line per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from taskgate.server.errors import ServiceError

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a handler may know about its call, whichever door it came through."""

    method: str
    metadata: Metadata = ()
    #: Seconds left until the caller's deadline, or None.
    timeout: float | None = None


Handler = Callable[[Message, CallContext], Awaitable[Message]]


@dataclass(frozen=True, slots=True)
class CallError(Exception):
    """A call that ended in a non-OK status: what the client will see."""

    code: grpc.StatusCode
    message: str
    details: tuple[any_pb2.Any, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC the pipeline serves: its handler and its message classes."""

    handler: Handler
    request_type: type[Message]
    response_type: type[Message]


class CallPipeline:
    """Runs handlers by full method name ("/api.TaskService/CreateTask")."""

    def __init__(self, methods: Mapping[str, Method]) -> None:
        self.methods = dict(methods)

    async def call(self, request: Message, context: CallContext) -> Message:
        """Run one call; raises CallError for every failure except cancellation."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await self._run(request, context)
        except CallError as failure:
            code = failure.code
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED  # the caller went away
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.debug("%s %s %.1fms", context.method, code.name, elapsed_ms)

    async def _run(self, request: Message, context: CallContext) -> Message:
        method = self.methods.get(context.method)
        if method is None:
            raise CallError(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {context.method}")
        try:
            async with asyncio.timeout(context.timeout):
                return await method.handler(request, context)
        except ServiceError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                log.warning("%s failed: %s", context.method, error.chain)
            raise CallError(error.code, error.chain, error.details()) from None
        except TimeoutError:
            raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except Exception:
            log.exception("%s failed unexpectedly", context.method)
            raise CallError(grpc.StatusCode.INTERNAL, "Internal error") from None
