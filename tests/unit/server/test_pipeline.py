"""The call pipeline both doors run: deadlines, error translation, unknown methods."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from taskgate.api import error_pb2
from taskgate.server.errors import invalid_input
from taskgate.server.pipeline import CallContext, CallError, CallPipeline, Method

METHOD = "/test.Service/Method"


def pipeline_for(behaviour: str) -> CallPipeline:
    async def handler(request: Message, context: CallContext) -> Message:
        if behaviour == "sleep":
            await asyncio.sleep(10)
        if behaviour == "invalid":
            raise invalid_input("bad thing").wrap("Outer")
        if behaviour == "bug":
            raise ZeroDivisionError("secret internals")
        return request

    return CallPipeline({METHOD: Method(handler, empty_pb2.Empty, empty_pb2.Empty)})


async def call(behaviour: str, method: str = METHOD, deadline: float | None = None) -> Message:
    context = CallContext(method=method, timeout=deadline)
    return await pipeline_for(behaviour).call(empty_pb2.Empty(), context)


async def test_success_passes_the_response_through() -> None:
    assert await call("ok") == empty_pb2.Empty()


async def test_deadline_becomes_deadline_exceeded() -> None:
    with pytest.raises(CallError) as caught:
        await call("sleep", deadline=0.01)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_service_error_keeps_kfp_chain_and_detail() -> None:
    with pytest.raises(CallError) as caught:
        await call("invalid")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Outer: Invalid input error: bad thing"
    detail = error_pb2.Error()
    assert caught.value.details[0].Unpack(detail)
    assert detail == error_pb2.Error(
        error_message="bad thing", error_details="Outer: Invalid input error: bad thing"
    )


async def test_unexpected_exception_is_internal_without_python_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(CallError) as caught:
        await call("bug")
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert caught.value.message == "Internal error"
    assert caught.value.details == ()
    assert "ZeroDivisionError" in caplog.text  # logged once, for the operator


async def test_unknown_method_is_unimplemented() -> None:
    with pytest.raises(CallError) as caught:
        await call("ok", method="/test.Service/Nope")
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED


async def test_cancellation_propagates() -> None:
    task = asyncio.create_task(call("sleep"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
