"""The call pipeline that both doors run: gRPC (grpc_server.py) and REST (local_invoker.py).

Whatever a gRPC interceptor would do happens here, once, for every call whichever door it came
through: deadline enforcement, error translation (ServiceError → status with KFP's `api.Error`
detail; anything unexpected → INTERNAL with no Python text), and one log line per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from taskgate.logs import RateLimitedLog
from taskgate.rpc import CallOptions, RpcStatusError
from taskgate.server.authz.access import Gate, acting_as
from taskgate.server.errors import ServiceError

log = logging.getLogger(__name__)
_failures = RateLimitedLog(log)

#: A servicer method: the request and what the caller sent with it (metadata, deadline).
Handler = Callable[[Message, CallOptions], Awaitable[Message]]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC the pipeline serves: its handler and its message classes."""

    handler: Handler
    request_type: type[Message]
    response_type: type[Message]


class CallPipeline:
    """Runs handlers by full method name ("/api.TaskService/CreateTask")."""

    def __init__(self, methods: Mapping[str, Method], gate: Gate | None = None) -> None:
        self.methods = dict(methods)
        #: multi-user mode (server/authz): every call is authenticated here, on either door.
        self.gate = gate

    async def call(self, method: str, request: Message, options: CallOptions) -> Message:
        """Run one call of `method` ("/pkg.Service/Method"); raises RpcStatusError for every
        failure except cancellation."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await self._run(method, request, options)
        except RpcStatusError as failure:
            code = failure.status.code
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED  # the caller went away
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.debug("%s %s %.1fms", method, code.name, elapsed_ms)

    async def _run(self, name: str, request: Message, options: CallOptions) -> Message:
        method = self.methods.get(name)
        if method is None:
            raise RpcStatusError.of(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {name}")
        try:
            async with asyncio.timeout(options.timeout):
                if self.gate is None:
                    return await method.handler(request, options)
                with acting_as(*await self.gate.admit(options.metadata)):
                    return await method.handler(request, options)
        except ServiceError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                # One line per method and code every 10 s, with a count: an outage fails every
                # call, and must not write a line for each.
                _failures.warning((name, error.code), "%s failed: %s", name, error.chain)
            raise RpcStatusError.of(error.code, error.chain, error.details()) from None
        except TimeoutError:
            raise RpcStatusError.of(
                grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
            ) from None
        except Exception:
            log.exception("%s failed unexpectedly", name)
            raise RpcStatusError.of(grpc.StatusCode.INTERNAL, "Internal error") from None
