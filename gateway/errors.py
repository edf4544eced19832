"""The HTTP edge of errors: an exception becomes an `RpcStatus`, then an HTTP status and a body.

Nothing else in the gateway picks an HTTP status. `TranscodeError` is what the transcoder itself
raises for bad input and routing misses; its message names the parameter in plain words.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2  # noqa: F401  (registers google.rpc.* details)

from taskgate.gateway.json_fast import dump_json
from taskgate.gateway.options import ErrorStyle
from taskgate.logs import RateLimitedLog
from taskgate.rpc import RpcStatus, RpcStatusError, code_number

log = logging.getLogger(__name__)
#: Clients that go away mid-upload: one line every 10 s at most, with a count.
_disconnects = RateLimitedLog(log)

#: google/rpc/code.proto "HTTP Mapping" (docs/decisions.md T39).
HTTP_STATUS_BY_CODE: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

#: The message of an unexpected failure: no Python text reaches the client.
INTERNAL_ERROR_MESSAGE = "Internal error"


class TranscodeError(RpcStatusError):
    """A failure the gateway itself answers: bad input or a routing miss, found before any call
    is made, or an upstream's malformed reply.

    `http_status` overrides the code's usual status (404/405/413 for routing and size, 502 for
    an upstream's garbage, 431 for metadata it refuses: docs/decisions.md T71, T72), and
    `headers` are added to the response (`Allow` on a 405). `details` are the upstream's, when
    the failure is its.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
        details: tuple[any_pb2.Any, ...] = (),
    ) -> None:
        super().__init__(RpcStatus(code, message, details))
        self.http_status = http_status
        self.headers: Mapping[str, str] = headers or {}

    @classmethod
    def invalid(cls, message: str) -> TranscodeError:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message)


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code; 500 for anything outside the table."""
    return HTTP_STATUS_BY_CODE.get(code, 500)


def http_status_of(exc: BaseException, status: RpcStatus) -> int:
    """The HTTP status for `exc` once it has become `status`."""
    if isinstance(exc, TranscodeError) and exc.http_status is not None:
        return exc.http_status
    return http_status_for(status.code)


def status_from_exception(exc: BaseException) -> RpcStatus:
    """The one translation of exceptions; unexpected ones are logged here, once."""
    if isinstance(exc, RpcStatusError):
        return exc.status
    if isinstance(exc, ConnectionResetError):  # aiohttp's "Connection lost" mid-body
        _disconnects.info(
            "disconnected", "a client disconnected before its request was read: %s", exc
        )
        return RpcStatus(grpc.StatusCode.CANCELLED, "the client disconnected")
    log.error("unexpected error while serving a REST call", exc_info=exc)
    return RpcStatus(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_MESSAGE)


def status_to_dict(
    status: RpcStatus,
    style: ErrorStyle,
    pool: descriptor_pool.DescriptorPool | None = None,
    *,
    use_proto_field_names: bool | None = None,
) -> dict[str, Any]:
    """The error body as a dict, keys in wire order (grpc-gateway v1 for "kfp")."""
    proto_names = style == "kfp" if use_proto_field_names is None else use_proto_field_names
    body: dict[str, Any] = {}
    if style == "kfp":
        body["error"] = status.message
    body["code"] = code_number(status.code)
    body["message"] = status.message
    if status.details:
        body["details"] = [_detail_to_dict(d, pool, proto_names) for d in status.details]
    return body


def error_body(
    status: RpcStatus,
    style: ErrorStyle,
    pool: descriptor_pool.DescriptorPool | None = None,
    *,
    use_proto_field_names: bool | None = None,
) -> bytes:
    """`{"error","code","message","details"}` ("kfp") or google.rpc.Status JSON ("status")."""
    body = status_to_dict(status, style, pool, use_proto_field_names=use_proto_field_names)
    return dump_json(body)


def _detail_to_dict(
    detail: any_pb2.Any, pool: descriptor_pool.DescriptorPool | None, proto_names: bool
) -> dict[str, Any]:
    # The upstream's own pool first, then the default one, which always knows the standard
    # google.rpc error details (imported above) even when the upstream's files don't import them.
    for candidate in (pool, None) if pool is not None else (None,):
        try:
            return json_format.MessageToDict(
                detail, preserving_proto_field_name=proto_names, descriptor_pool=candidate
            )
        except (TypeError, KeyError, DecodeError, json_format.Error):
            continue
    # grpc-gateway answers 500 here (gw#1842); the raw Any is still useful to a client.
    value = base64.b64encode(detail.value).decode("ascii")
    return {"@type": detail.type_url, "value": value}
