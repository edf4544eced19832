"""`DetailTypes`: error-detail types the pool lacks are fetched through reflection, added with
their imports, and remembered when the upstream cannot describe them (docs/decisions.md T74).
The channel is a fake that answers reflection requests from a table and counts them."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, timestamp_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import reflection_pb2

from taskgate.gateway import discovery
from taskgate.gateway.discovery import DetailTypes
from taskgate.gateway.errors import error_body
from taskgate.rpc import RpcStatus

DETAIL_FILE = "b3test/detail.proto"


def detail_file() -> descriptor_pb2.FileDescriptorProto:
    """b3test.Detail {string reason = 1; google.protobuf.Timestamp at = 2;}"""
    proto = descriptor_pb2.FileDescriptorProto(
        name=DETAIL_FILE,
        package="b3test",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    message = proto.message_type.add(name="Detail")
    message.field.add(name="reason", number=1, type=9, label=1, json_name="reason")
    message.field.add(name="at", number=2, type=11, label=1, type_name=".google.protobuf.Timestamp")
    return proto


def any_of(type_name: str, value: bytes = b"") -> any_pb2.Any:
    return any_pb2.Any(type_url=f"type.googleapis.com/{type_name}", value=value)


class FakeChannel:
    """Answers file_containing_symbol for b3test.Detail; everything else is "not found",
    or `failure` when set."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.failure: grpc.StatusCode | None = None

    def unary_unary(self, method: str, **_: Any) -> Any:
        async def ask(
            request: reflection_pb2.ServerReflectionRequest, **__: Any
        ) -> reflection_pb2.ServerReflectionResponse:
            question = request.file_containing_symbol or request.file_by_filename
            self.asked.append(question)
            if self.failure is not None:
                raise grpc.aio.AioRpcError(
                    self.failure, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
                )
            response = reflection_pb2.ServerReflectionResponse()
            if question == "b3test.Detail":
                blob = detail_file().SerializeToString()
                response.file_descriptor_response.file_descriptor_proto.append(blob)
            else:
                response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
                response.error_response.error_message = "not found"
            return response

        return ask


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def pool() -> descriptor_pool.DescriptorPool:
    return descriptor_pool.DescriptorPool()


async def test_a_type_the_upstream_describes_is_added_with_its_imports(
    channel: FakeChannel, pool: descriptor_pool.DescriptorPool
) -> None:
    types = DetailTypes(channel, pool)  # type: ignore[arg-type]
    detail = detail_file()
    assert detail.dependency == ["google/protobuf/timestamp.proto"]
    value = b"\n\x03why\x12\x02\x08\x01"  # reason "why", at 1 s
    status = RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "no", (any_of("b3test.Detail", value),))
    assert b'"value"' in error_body(status, "status", pool)  # base64 before
    await types.resolve(status.details)
    assert channel.asked == ["b3test.Detail", "google/protobuf/timestamp.proto"]
    body = error_body(status, "status", pool)
    assert b'"details":[{"@type":"type.googleapis.com/b3test.Detail","reason":"why"' in body
    await types.resolve(status.details)  # known now: nothing asked
    assert len(channel.asked) == 2


async def test_known_types_ask_nothing(
    channel: FakeChannel, pool: descriptor_pool.DescriptorPool
) -> None:
    types = DetailTypes(channel, pool)  # type: ignore[arg-type]
    await types.resolve(
        [
            any_of(error_details_pb2.BadRequest.DESCRIPTOR.full_name),
            any_of(timestamp_pb2.Timestamp.DESCRIPTOR.full_name),
        ]
    )
    assert channel.asked == []


async def test_types_the_upstream_cannot_describe_are_remembered_within_a_bound(
    channel: FakeChannel, pool: descriptor_pool.DescriptorPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "MAX_UNKNOWN_DETAIL_TYPES", 2)
    types = DetailTypes(channel, pool)  # type: ignore[arg-type]
    await types.resolve([any_of("nowhere.A")])
    await types.resolve([any_of("nowhere.A")])
    assert channel.asked == ["nowhere.A"]  # remembered
    await types.resolve([any_of("nowhere.B"), any_of("nowhere.C")])  # A is forgotten
    await types.resolve([any_of("nowhere.A"), any_of("nowhere.C")])
    assert channel.asked == ["nowhere.A", "nowhere.B", "nowhere.C", "nowhere.A"]


async def test_a_failed_lookup_is_not_remembered(
    channel: FakeChannel, pool: descriptor_pool.DescriptorPool
) -> None:
    types = DetailTypes(channel, pool)  # type: ignore[arg-type]
    channel.failure = grpc.StatusCode.UNAVAILABLE
    await types.resolve([any_of("b3test.Detail")])
    channel.failure = None
    await types.resolve([any_of("b3test.Detail")])
    assert channel.asked[-2:] == ["b3test.Detail", "google/protobuf/timestamp.proto"]
    pool.FindMessageTypeByName("b3test.Detail")
