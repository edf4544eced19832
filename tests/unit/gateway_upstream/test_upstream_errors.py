"""How GrpcInvoker words failures: transport errors, status details, unknown methods."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.upstream import GrpcInvoker, call_error, describe_unreachable
from taskgate.rpc import STATUS_DETAILS_KEY, CallOptions, RpcStatusError

REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: "
    "Failed to connect to remote host: Connection refused"
)
UNRESOLVED = (
    "errors resolving nowhere.invalid:80: [field:hostname lookup error:address lookup failed "
    "for nowhere.invalid:80: Domain name not found]"
)


@pytest.mark.parametrize(
    ("details", "words"),
    [
        (REFUSED, "connection refused"),
        (UNRESOLVED, "name resolution failed"),
        ("Socket closed", "connection closed"),
        ("Connection reset by peer", "connection reset"),
        ("failed to connect to all addresses; last error: ...", "cannot connect"),
        ("the database is down", None),
        ("", None),
    ],
)
def test_describe_unreachable(details: str, words: str | None) -> None:
    assert describe_unreachable(details) == words


def test_dead_upstream_is_named_without_grpc_core_text() -> None:
    status = call_error(grpc.StatusCode.UNAVAILABLE, REFUSED, None, "h:1").status
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.message == "upstream h:1 is unavailable: connection refused"


def test_unavailable_chosen_by_the_service_keeps_its_message() -> None:
    error = call_error(grpc.StatusCode.UNAVAILABLE, "the database is down", None, "h:1")
    assert error.status.message == "the database is down"


def test_details_come_from_the_status_trailer_and_unknown_types_stay_raw() -> None:
    bad_request = any_pb2.Any()
    bad_request.Pack(error_details_pb2.BadRequest())
    unknown = any_pb2.Any(type_url="type.googleapis.com/nowhere.Unknown", value=b"\x08\x2a")
    rich = status_pb2.Status(code=3, message="bad", details=[bad_request, unknown])
    trailer = (STATUS_DETAILS_KEY, rich.SerializeToString())

    # grpc.aio's own Metadata, as a failed grpc.aio call carries it
    trailers = grpc.aio.Metadata(trailer)
    status = call_error(grpc.StatusCode.INVALID_ARGUMENT, "bad", trailers, "").status

    assert status.message == "bad"
    assert status.details == (bad_request, unknown)


def test_undecodable_status_trailer_gives_no_details() -> None:
    trailer = (STATUS_DETAILS_KEY, b"\xff\xff")
    status = call_error(grpc.StatusCode.INTERNAL, "x", (trailer,), "").status
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, ())


async def test_unknown_method_is_unimplemented_without_a_call() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        invoker = GrpcInvoker(channel, upstream="127.0.0.1:9")
        with pytest.raises(RpcStatusError) as caught:
            await invoker.unary("/nowhere.Service/Method", any_pb2.Any(), CallOptions())
    assert caught.value.status.code == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.status.message == "unknown method /nowhere.Service/Method"
