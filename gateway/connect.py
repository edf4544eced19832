"""The Connect protocol (connectrpc.com/docs/protocol) on the HTTP port: what is read and
written. Pure.

Unary calls POST the bare message (`application/json` or `application/proto`, HTTP
`Content-Encoding` for compression) and get it back bare with 200, or an error as a JSON body
with the HTTP status of `HTTP_STATUS_BY_CODE`; trailing metadata travels as `Trailer-<key>`
headers. Server-streaming calls (`application/connect+json`, `application/connect+proto`) frame
messages in envelopes (envelope.py) and always answer 200: the last frame (flag 0x02) is a JSON
object with the error, if any, and the trailing metadata. Deadlines come from
`Connect-Timeout-Ms`. A compression the door does not take (`Content-Encoding` of a unary call,
`Connect-Content-Encoding` of a stream) is `unimplemented`, naming the ones it takes, as the
protocol asks, where REST answers 415. The JSON codec is proto3 JSON (lowerCamel names out,
either name in, unknown fields ignored) with the method's own descriptor pool
(docs/decisions.md T82, T83).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool as descriptor_pool_module
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from taskgate.gateway import errors
from taskgate.gateway.body import coding_of
from taskgate.gateway.envelope import header_value, headers_from_metadata
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.json_fast import dump_json
from taskgate.rpc import Metadata, RpcStatus

END_STREAM_FLAG = 0x02
PROTOCOL_VERSION_HEADER = "Connect-Protocol-Version"
TIMEOUT_HEADER = "Connect-Timeout-Ms"
STREAM_ENCODING_HEADER = "Connect-Content-Encoding"
ACCEPT_STREAM_ENCODING_HEADER = "Connect-Accept-Encoding"
#: The HTTP content codings a unary request may use (those body.py undoes).
UNARY_ENCODINGS = "gzip, deflate"
ERROR_CONTENT_TYPE = "application/json"
TRAILER_PREFIX = "trailer-"
_TIMEOUT = re.compile(r"[0-9]{1,10}")
_M = TypeVar("_M", bound=Message)

#: The Connect protocol's code names and HTTP statuses (its "Error Codes" table).
CODE_NAMES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.CANCELLED: "canceled",
    grpc.StatusCode.UNKNOWN: "unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline_exceeded",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.ALREADY_EXISTS: "already_exists",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "resource_exhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "failed_precondition",
    grpc.StatusCode.ABORTED: "aborted",
    grpc.StatusCode.OUT_OF_RANGE: "out_of_range",
    grpc.StatusCode.UNIMPLEMENTED: "unimplemented",
    grpc.StatusCode.INTERNAL: "internal",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.DATA_LOSS: "data_loss",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
}
#: Connect's table gives every error code the status google/rpc/code.proto's mapping gives it
#: (REST's, T39), so the one table serves both doors; its tests check Connect's numbers.
HTTP_STATUS_BY_CODE: Mapping[grpc.StatusCode, int] = {
    code: status for code, status in errors.HTTP_STATUS_BY_CODE.items() if code in CODE_NAMES
}


@dataclass(frozen=True, slots=True)
class ConnectContentType:
    """A Connect Content-Type: its codec ("json" or "proto") and whether it is streaming."""

    codec: str
    streaming: bool

    @property
    def content_type(self) -> str:
        prefix = "application/connect+" if self.streaming else "application/"
        return prefix + self.codec


def parse_content_type(content_type: str) -> ConnectContentType | None:
    """The Connect codec a Content-Type names, or None. `charset=utf-8` is the only charset a
    JSON body may declare; any other is not Connect."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = params.strip().lower().replace(" ", "")
    if charset and charset not in ("charset=utf-8", 'charset="utf-8"'):
        return None
    streaming = media.startswith("application/connect+")
    codec = media.removeprefix("application/connect+" if streaming else "application/")
    if codec not in ("json", "proto") or codec == media:
        return None
    if codec == "proto" and charset:
        return None
    return ConnectContentType(codec, streaming)


def parse_timeout(text: str | None) -> float | None:
    """`Connect-Timeout-Ms` in seconds (None when absent): at most 10 digits."""
    if text is None:
        return None
    if not _TIMEOUT.fullmatch(text.strip()):
        raise TranscodeError.invalid(
            f'invalid Connect-Timeout-Ms header "{text[:32]}": expected up to 10 digits'
        )
    return int(text.strip()) / 1000


def check_protocol_version(version: str | None) -> None:
    """`Connect-Protocol-Version` may be absent (curl, a plain fetch) but, if sent, must be 1."""
    if version is not None and version.strip() != "1":
        raise TranscodeError.invalid(
            f'unsupported Connect-Protocol-Version "{version[:16]}": expected "1"'
        )


def check_unary_encoding(content_encoding: str) -> None:
    """A unary request's `Content-Encoding` must be one the body reader undoes (body.py); any
    other is `unimplemented` with `Accept-Encoding` listing those, as the protocol asks (REST
    answers 415 instead)."""
    try:
        coding_of(content_encoding)
    except TranscodeError as exc:
        raise TranscodeError(
            grpc.StatusCode.UNIMPLEMENTED,
            exc.status.message,
            headers={"Accept-Encoding": UNARY_ENCODINGS},
        ) from None


def check_stream_encoding(encoding: str) -> None:
    """A streaming request's `Connect-Content-Encoding`: identity or gzip, else `unimplemented`
    with `Connect-Accept-Encoding: gzip`."""
    coding = encoding.strip().lower()
    if coding not in ("", "identity", "gzip"):
        raise TranscodeError(
            grpc.StatusCode.UNIMPLEMENTED,
            f'unsupported {STREAM_ENCODING_HEADER} "{coding[:32]}": use gzip or identity',
            headers={ACCEPT_STREAM_ENCODING_HEADER: "gzip"},
        )


def decode_message(
    codec: str,
    body: bytes,
    message: _M,
    pool: descriptor_pool_module.DescriptorPool | None,
) -> _M:
    """Parse `body` into `message` (empty JSON or proto body: the empty message)."""
    try:
        if codec == "proto":
            message.ParseFromString(body)
        elif body.strip():
            json_format.Parse(
                body.decode("utf-8"), message, ignore_unknown_fields=True, descriptor_pool=pool
            )
    except (DecodeError, UnicodeDecodeError, json_format.ParseError, RecursionError) as exc:
        raise TranscodeError.invalid(
            f"the request body is not a valid {codec} {message.DESCRIPTOR.full_name}: {exc}"
        ) from None
    return message


def encode_message(
    codec: str, message: Message, pool: descriptor_pool_module.DescriptorPool | None
) -> bytes:
    """A message in the call's codec: proto bytes, or proto3 JSON with lowerCamel names."""
    if codec == "proto":
        return message.SerializeToString()
    return dump_json(json_format.MessageToDict(message, descriptor_pool=pool))


def error_to_dict(
    status: RpcStatus, pool: descriptor_pool_module.DescriptorPool | None
) -> dict[str, Any]:
    """`{"code","message","details":[{"type","value","debug"}]}`: `value` is the detail's bytes
    in base64 without padding, `debug` its JSON when a descriptor pool knows its type."""
    error: dict[str, Any] = {"code": CODE_NAMES.get(status.code, "unknown")}
    if status.message:
        error["message"] = status.message
    details = []
    for detail in status.details:
        entry: dict[str, Any] = {
            "type": detail.type_url.rpartition("/")[2],
            "value": header_value(detail.value),
        }
        debug = _debug_json(detail, pool)
        if debug is not None:
            entry["debug"] = debug
        details.append(entry)
    if details:
        error["details"] = details
    return error


def _debug_json(detail: Any, pool: descriptor_pool_module.DescriptorPool | None) -> Any:
    for candidate in (pool, None) if pool is not None else (None,):
        try:
            found = json_format.MessageToDict(detail, descriptor_pool=candidate)
        except (TypeError, KeyError, DecodeError, json_format.Error):
            continue
        found.pop("@type", None)
        return found
    return None


def error_body(status: RpcStatus, pool: descriptor_pool_module.DescriptorPool | None) -> bytes:
    """The JSON body of a failed unary call."""
    return dump_json(error_to_dict(status, pool))


def trailer_headers(trailing_metadata: Metadata) -> list[tuple[str, str]]:
    """A unary call's trailing metadata, as `Trailer-<key>` headers."""
    return headers_from_metadata(trailing_metadata, TRAILER_PREFIX)


def end_stream_message(
    status: RpcStatus | None,
    trailing_metadata: Metadata,
    pool: descriptor_pool_module.DescriptorPool | None,
) -> bytes:
    """The payload of a stream's last frame: `{"error": ..., "metadata": {key: [values]}}`."""
    end: dict[str, Any] = {}
    if status is not None and status.code != grpc.StatusCode.OK:
        end["error"] = error_to_dict(status, pool)
    metadata: dict[str, list[str]] = {}
    for key, value in headers_from_metadata(trailing_metadata):
        metadata.setdefault(key, []).append(value)
    if metadata:
        end["metadata"] = metadata
    return json.dumps(end, separators=(",", ":")).encode("utf-8")
