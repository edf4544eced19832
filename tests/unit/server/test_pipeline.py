"""The call pipeline both doors run: deadlines, error translation, unknown methods."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from taskgate.api import error_pb2
from taskgate.rpc import CallOptions, RpcStatus, RpcStatusError
from taskgate.server.errors import invalid_input
from taskgate.server.pipeline import CallPipeline, Method

METHOD = "/test.Service/Method"


def pipeline_for(behaviour: str) -> CallPipeline:
    async def handler(request: Message, options: CallOptions) -> Message:
        if behaviour == "sleep":
            await asyncio.sleep(10)
        if behaviour == "invalid":
            raise invalid_input("bad thing").wrap("Outer")
        if behaviour == "bug":
            raise ZeroDivisionError("secret internals")
        return request

    return CallPipeline({METHOD: Method(handler, empty_pb2.Empty, empty_pb2.Empty)})


async def call(behaviour: str, method: str = METHOD, deadline: float | None = None) -> Message:
    options = CallOptions(timeout=deadline)
    return await pipeline_for(behaviour).call(method, empty_pb2.Empty(), options)


async def failure(behaviour: str, method: str = METHOD, deadline: float | None = None) -> RpcStatus:
    with pytest.raises(RpcStatusError) as caught:
        await call(behaviour, method, deadline)
    return caught.value.status


async def test_success_passes_the_response_through() -> None:
    assert await call("ok") == empty_pb2.Empty()


async def test_deadline_becomes_deadline_exceeded() -> None:
    assert (await failure("sleep", deadline=0.01)).code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_service_error_keeps_kfp_chain_and_detail() -> None:
    status = await failure("invalid")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.message == "Outer: Invalid input error: bad thing"
    detail = error_pb2.Error()
    assert status.details[0].Unpack(detail)
    assert detail == error_pb2.Error(
        error_message="bad thing", error_details="Outer: Invalid input error: bad thing"
    )


async def test_unexpected_exception_is_internal_without_python_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        status = await failure("bug")
    assert status == RpcStatus(grpc.StatusCode.INTERNAL, "Internal error")
    assert "ZeroDivisionError" in caplog.text  # logged once, for the operator


async def test_unknown_method_is_unimplemented() -> None:
    status = await failure("ok", method="/test.Service/Nope")
    assert status.code == grpc.StatusCode.UNIMPLEMENTED


async def test_cancellation_propagates() -> None:
    task = asyncio.create_task(call("sleep"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
