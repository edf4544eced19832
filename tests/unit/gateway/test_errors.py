"""errors: code to HTTP status, both body styles, unresolvable details, unexpected exceptions."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import any_pb2, descriptor_pool
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.errors import (
    HTTP_STATUS_BY_CODE,
    INTERNAL_ERROR_MESSAGE,
    TranscodeError,
    error_body,
    http_status_for,
    http_status_of,
    status_from_exception,
)
from taskgate.rpc import RpcStatus, RpcStatusError

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        (C.OK, 200),
        (C.CANCELLED, 499),
        (C.UNKNOWN, 500),
        (C.INVALID_ARGUMENT, 400),
        (C.DEADLINE_EXCEEDED, 504),
        (C.NOT_FOUND, 404),
        (C.ALREADY_EXISTS, 409),
        (C.PERMISSION_DENIED, 403),
        (C.RESOURCE_EXHAUSTED, 429),
        (C.FAILED_PRECONDITION, 400),
        (C.ABORTED, 409),
        (C.OUT_OF_RANGE, 400),
        (C.UNIMPLEMENTED, 501),
        (C.INTERNAL, 500),
        (C.UNAVAILABLE, 503),
        (C.DATA_LOSS, 500),
        (C.UNAUTHENTICATED, 401),
    ],
)
def test_http_status_for_every_code(code: grpc.StatusCode, http_status: int) -> None:
    assert http_status_for(code) == http_status


def test_table_covers_every_code() -> None:
    assert set(HTTP_STATUS_BY_CODE) == set(grpc.StatusCode)


def api_error_detail() -> any_pb2.Any:
    """An `api.Error` detail as KFP sends it, built in a private pool (gateway never imports api)."""
    from google.protobuf import descriptor_pb2, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="fake_error.proto", package="api", syntax="proto3"
    )
    message = file.message_type.add(name="Error")
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    message.field.add(name="error_message", number=1, type=string, label=optional)
    message.field.add(name="error_details", number=2, type=string, label=optional)
    POOL.Add(file)
    error_class = message_factory.GetMessageClass(POOL.FindMessageTypeByName("api.Error"))
    detail = any_pb2.Any()
    detail.Pack(error_class(error_message="m", error_details="d"))
    return detail


POOL = descriptor_pool.DescriptorPool()
API_ERROR = api_error_detail()


def test_kfp_body_matches_grpc_gateway_v1_with_an_api_error_detail() -> None:
    status = RpcStatus(C.INVALID_ARGUMENT, "Invalid task", (API_ERROR,))
    assert error_body(status, "kfp", POOL) == (
        b'{"error":"Invalid task","code":3,"message":"Invalid task","details":'
        b'[{"@type":"type.googleapis.com/api.Error","error_message":"m","error_details":"d"}]}'
    )


def test_status_body_uses_json_names_unless_told() -> None:
    status = RpcStatus(C.INVALID_ARGUMENT, "bad", (API_ERROR,))
    assert json.loads(error_body(status, "status", POOL)) == {
        "code": 3,
        "message": "bad",
        "details": [
            {"@type": "type.googleapis.com/api.Error", "errorMessage": "m", "errorDetails": "d"}
        ],
    }
    body = json.loads(error_body(status, "status", POOL, use_proto_field_names=True))
    assert body["details"][0]["error_message"] == "m"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("kfp", b'{"error":"gone","code":5,"message":"gone"}'),
        ("status", b'{"code":5,"message":"gone"}'),
    ],
)
def test_details_are_omitted_when_empty(style: str, expected: bytes) -> None:
    assert error_body(RpcStatus(C.NOT_FOUND, "gone"), style, None) == expected  # type: ignore[arg-type]


def test_unresolvable_details_fall_back_to_base64() -> None:
    unknown = any_pb2.Any(type_url="type.googleapis.com/x.Unknown", value=b"\x08\x01")
    corrupt = any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=b"\xff\xff")
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="R"))
    status = RpcStatus(C.INTERNAL, "x", (unknown, corrupt, info))
    assert json.loads(error_body(status, "status"))["details"] == [
        {"@type": "type.googleapis.com/x.Unknown", "value": "CAE="},
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "value": "//8="},
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"},
    ]


def test_non_ascii_messages_are_written_as_utf8() -> None:
    assert error_body(RpcStatus(C.NOT_FOUND, "caf\u00e9"), "status") == (
        '{"code":5,"message":"caf\u00e9"}'.encode()
    )


def test_status_from_exception() -> None:
    status = RpcStatus(C.NOT_FOUND, "x")
    assert status_from_exception(RpcStatusError(status)) is status
    assert status_from_exception(TranscodeError.invalid("bad q")) == RpcStatus(
        C.INVALID_ARGUMENT, "bad q"
    )


def test_unexpected_exception_is_logged_once_and_hidden(caplog: pytest.LogCaptureFixture) -> None:
    status = status_from_exception(KeyError("secret"))
    assert status == RpcStatus(C.INTERNAL, INTERNAL_ERROR_MESSAGE)
    assert len(caplog.records) == 1
    assert "secret" not in status.message


def test_http_status_of_honours_transcoder_overrides() -> None:
    error = TranscodeError(C.UNIMPLEMENTED, "Method Not Allowed", http_status=405)
    assert http_status_of(error, error.status) == 405
    plain = TranscodeError.invalid("x")
    assert http_status_of(plain, plain.status) == 400
