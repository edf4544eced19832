"""gRPC-Web (grpc/grpc PROTOCOL-WEB.md) on the HTTP port: what is read and written. Pure.

A gRPC-Web call is a POST to `/pkg.Service/Method` whose body is gRPC's envelopes
(envelope.py); the answer is 200 with the response envelopes and then one trailer frame (flag
0x80) holding `grpc-status`, `grpc-message` (percent-encoded), `grpc-status-details-bin` and
the trailing metadata as HTTP/1 header lines. The text variant (`application/grpc-web-text`)
base64-encodes the whole body both ways; a request body may be several padded base64 chunks one
after the other, as a browser that streams its upload sends them. Errors always travel in the
trailer frame, never as an HTTP status, so every client reads them the same way
(docs/decisions.md T81).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.envelope import frame, header_value, headers_from_metadata
from taskgate.gateway.errors import TranscodeError
from taskgate.rpc import STATUS_DETAILS_KEY, Metadata, RpcStatus, code_number

TRAILER_FLAG = 0x80
BINARY_CONTENT_TYPE = "application/grpc-web+proto"
TEXT_CONTENT_TYPE = "application/grpc-web-text+proto"
_CONTENT_TYPES = {
    "application/grpc-web": False,
    "application/grpc-web+proto": False,
    "application/grpc-web-text": True,
    "application/grpc-web-text+proto": True,
}
#: A base64 chunk: characters, then its padding; chunks may follow one another.
_BASE64_CHUNK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
#: grpc-message keeps these bytes as they are and percent-encodes every other one.
_UNRESERVED = frozenset(range(0x20, 0x7F)) - {ord("%")}


@dataclass(frozen=True, slots=True)
class WebContentType:
    text: bool

    @property
    def response_content_type(self) -> str:
        return TEXT_CONTENT_TYPE if self.text else BINARY_CONTENT_TYPE


def parse_content_type(content_type: str) -> WebContentType | None:
    """The gRPC-Web variant a Content-Type names (parameters ignored), or None."""
    media = content_type.partition(";")[0].strip().lower()
    text = _CONTENT_TYPES.get(media)
    return None if text is None else WebContentType(text)


def decode_text_body(body: bytes) -> bytes:
    """A `grpc-web-text` request body: one or more padded base64 chunks (whitespace ignored)."""
    compact = b"".join(body.split())
    out = bytearray()
    position = 0
    while position < len(compact):
        chunk = _BASE64_CHUNK.match(compact, position)
        end = chunk.end() if chunk is not None else position
        if end == position or (end - position) % 4:
            raise TranscodeError.invalid("the grpc-web-text request body is not valid base64")
        try:
            out += base64.b64decode(compact[position:end], validate=True)
        except binascii.Error:
            raise TranscodeError.invalid(
                "the grpc-web-text request body is not valid base64"
            ) from None
        position = end
    return bytes(out)


def percent_encode(message: str) -> str:
    """`grpc-message` as gRPC writes it: UTF-8, `%XX` for `%` and bytes outside 0x20-0x7E."""
    return "".join(
        chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in message.encode("utf-8", "replace")
    )


def status_details(status: RpcStatus) -> str | None:
    """`grpc-status-details-bin`: the google.rpc.Status, when there are details to carry."""
    if not status.details:
        return None
    proto = status_pb2.Status(code=code_number(status.code), message=status.message)
    proto.details.extend(status.details)
    return header_value(proto.SerializeToString())


def trailer_lines(status: RpcStatus, trailing_metadata: Metadata = ()) -> list[tuple[str, str]]:
    """The trailers of a call, in order: status, message, details, then the metadata."""
    lines = [("grpc-status", str(code_number(status.code)))]
    if status.message:
        lines.append(("grpc-message", percent_encode(status.message)))
    details = status_details(status)
    if details is not None:
        lines.append((STATUS_DETAILS_KEY, details))
    lines += headers_from_metadata(trailing_metadata)
    return lines


def trailer_frame(status: RpcStatus, trailing_metadata: Metadata = ()) -> bytes:
    """The last frame of every gRPC-Web response (flag 0x80)."""
    block = "".join(f"{k}:{v}\r\n" for k, v in trailer_lines(status, trailing_metadata))
    return frame(TRAILER_FLAG, block.encode("ascii"))
