"""What gRPC-Web and Connect share: the 5-byte message envelope, and headers as metadata. Pure.

Both protocols frame a stream of messages the way gRPC does on HTTP/2: one flags byte, a
4-byte big-endian length, the payload. gRPC-Web marks its trailer frame with flag 0x80 and
Connect its end-of-stream message with 0x02; 0x01 says the payload is compressed (with the
call's `grpc-encoding` or `Connect-Content-Encoding`). Splitting a request body checks every
length against the message limit before anything is copied, so a forged length costs nothing.

Unlike the REST door, whose allow-list picks the few headers it forwards (T42), these protocols
define request headers to be the call's metadata, as the gRPC door receives it; only the
headers that belong to HTTP, the browser or the protocol itself are left out (docs/decisions.md
T84). `-bin` values are base64 both ways.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.metadata import VALID_KEY, binary_value, is_header_safe
from taskgate.rpc import Metadata

HEADER_BYTES = 5
COMPRESSED = 0x01
_HEADER = struct.Struct(">BI")
#: Request headers that are HTTP's, the browser's or a protocol's own, never metadata.
_NOT_METADATA = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "pragma",
        "proxy-authorization",
        "referer",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-grpc-web",
        "x-user-agent",
        "traceparent",  # P13: the trace is continued by the door, not copied
        "tracestate",
    }
)
_NOT_METADATA_PREFIXES = ("grpc-", "connect-", "sec-", "access-control-", "proxy-", ":")


@dataclass(frozen=True, slots=True)
class Envelope:
    flags: int
    payload: bytes


def frame(flags: int, payload: bytes) -> bytes:
    """One enveloped message."""
    return _HEADER.pack(flags, len(payload)) + payload


def split_frames(data: bytes, limit: int) -> list[Envelope]:
    """Every envelope of a whole request body; INVALID_ARGUMENT if one is cut short,
    RESOURCE_EXHAUSTED if one says it is larger than `limit` bytes."""
    envelopes: list[Envelope] = []
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        if len(view) - offset < HEADER_BYTES:
            raise TranscodeError.invalid("the request body ends inside a message header")
        flags, length = _HEADER.unpack_from(view, offset)
        if length > limit:
            raise message_too_large(length, limit)
        start = offset + HEADER_BYTES
        if len(view) - start < length:
            raise TranscodeError.invalid(
                f"the request body ends inside a message ({length} bytes announced)"
            )
        envelopes.append(Envelope(flags, bytes(view[start : start + length])))
        offset = start + length
    return envelopes


def message_too_large(length: int, limit: int) -> TranscodeError:
    return TranscodeError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"a request message of {length} bytes is larger than {limit} bytes",
    )


def gunzip(payload: bytes, limit: int) -> bytes:
    """A gzip-compressed message, at most `limit` bytes once inflated."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error:
        raise TranscodeError.invalid("a request message is not valid gzip data") from None
    if len(out) > limit:
        raise message_too_large(len(out), limit)
    if not inflater.eof:
        raise TranscodeError.invalid("a request message is not valid gzip data")
    return out


def metadata_from_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str | bytes]]:
    """The request metadata of a gRPC-Web or Connect call, in header order."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        key = name.lower()
        if key in _NOT_METADATA or key.startswith(_NOT_METADATA_PREFIXES):
            continue
        if not VALID_KEY.fullmatch(key):
            continue
        if key.endswith("-bin"):
            metadata.append((key, binary_value(name, value)))
        elif value.isascii():
            metadata.append((key, value))
    return metadata


def header_value(value: str | bytes) -> str:
    """A metadata value as header text: `-bin` (bytes) values base64 without padding."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii").rstrip("=")
    return value


def headers_from_metadata(metadata: Metadata, prefix: str = "") -> list[tuple[str, str]]:
    """Response metadata as headers (`prefix` + key); values a header cannot carry, and keys
    that are HTTP's or gRPC's own, are dropped."""
    headers: list[tuple[str, str]] = []
    for key, value in metadata:
        if key in _NOT_METADATA or key.startswith(_NOT_METADATA_PREFIXES):
            continue
        text = header_value(value)
        if is_header_safe(text):
            headers.append((prefix + key, text))
    return headers
