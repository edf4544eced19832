"""HTTP/2 and gRPC wire pieces for the gateway's event-loop unary client (h2channel.py).

Pure functions, no I/O, table-tested (tests/unit/gateway/test_h2wire.py):
- RFC 9113 frame headers and SETTINGS payloads;
- RFC 7541 header fields, always as literals *without indexing*, so what the client sends never
  depends on an encoder table: a request's header block is a cached per-method prefix plus the
  per-call fields;
- gRPC over HTTP/2 (grpc's PROTOCOL-HTTP2.md): `grpc-timeout`, metadata values (`-bin` keys
  base64), the status of a finished call (`grpc-status`, percent-encoded `grpc-message`, or the
  HTTP status of a response that is not gRPC), and the length-prefixed message.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import unquote_to_bytes

import grpc

from taskgate.access import REQUEST_ID_KEY
from taskgate.gateway.field_paths import parse_base64
from taskgate.gateway.metadata import VALID_KEY
from taskgate.rpc import Metadata

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
# Flags.
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# SETTINGS identifiers (§6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 1, 2, 3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 4, 5, 6
# Error codes (§7).
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 6, 7, 8, 9
ENHANCE_YOUR_CALM = 0xB
#: RFC 9113's defaults, until the peer's SETTINGS say otherwise.
DEFAULT_WINDOW: Final = 65_535
DEFAULT_MAX_FRAME: Final = 16_384
MAX_WINDOW: Final = 2**31 - 1
MAX_STREAM_ID: Final = 2**31 - 1

#: An HPACK dynamic table size update to 0 (RFC 7541 §6.3): the first field of the first header
#: block on a connection, and again after the peer changes its table size, since this encoder
#: never adds to the table.
TABLE_SIZE_ZERO: Final = b"\x20"

#: grpc-timeout units in nanoseconds, finest first (PROTOCOL-HTTP2.md: at most 8 digits).
_TIMEOUT_UNITS: Final = (
    (b"n", 1),
    (b"u", 1_000),
    (b"m", 1_000_000),
    (b"S", 1_000_000_000),
    (b"M", 60_000_000_000),
    (b"H", 3_600_000_000_000),
)
_TIMEOUT_DIGITS: Final = 100_000_000
MAX_TIMEOUT: Final = b"99999999H"

_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}


def frame_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    """The 9 bytes before a frame's payload (§4.1)."""
    return (length << 48 | frame_type << 40 | flags << 32 | stream_id).to_bytes(9, "big")


def settings_payload(pairs: Iterable[tuple[int, int]]) -> bytes:
    return b"".join(ident.to_bytes(2, "big") + value.to_bytes(4, "big") for ident, value in pairs)


def parse_settings(payload: bytes) -> list[tuple[int, int]] | None:
    """The (identifier, value) pairs of a SETTINGS payload; None if its length is not a multiple
    of 6 (a FRAME_SIZE_ERROR, §6.5)."""
    if len(payload) % 6:
        return None
    return [
        (int.from_bytes(payload[i : i + 2], "big"), int.from_bytes(payload[i + 2 : i + 6], "big"))
        for i in range(0, len(payload), 6)
    ]


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the flag bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return hpack_int(len(raw), 7) + raw  # never Huffman-coded: cheaper to write, as valid


def literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, with a new name (RFC 7541 §6.2.2)."""
    return b"\x00" + _string(name) + _string(value)


def literal_static_name(index: int, value: bytes) -> bytes:
    """A literal field without indexing whose name is static table entry `index` (§6.2.2)."""
    return hpack_int(index, 4) + _string(value)


def request_prefix(path: bytes, authority: bytes, user_agent: bytes) -> bytes:
    """The fields every call to `path` starts with (the same bytes on every call)."""
    return (
        b"\x83\x86"  # :method POST and :scheme http, indexed from the static table (§A)
        + literal_static_name(4, path)  # :path
        + literal_static_name(1, authority)  # :authority
        + literal_static_name(31, b"application/grpc")  # content-type
        + literal(b"te", b"trailers")
        + literal(b"grpc-accept-encoding", b"identity")  # T90: nothing compressed on this hop
        + literal_static_name(58, user_agent)  # user-agent
    )


def grpc_timeout(seconds: float) -> bytes:
    """`grpc-timeout` for `seconds` (> 0): the finest unit whose value fits in 8 digits, rounded
    up, so the upstream's deadline is never earlier than the caller's."""
    nanos = max(math.ceil(seconds * 1e9 - 1e-3), 1)  # whole ns, float noise aside
    for unit, scale in _TIMEOUT_UNITS:
        amount = -(-nanos // scale)
        if amount < _TIMEOUT_DIGITS:
            return str(amount).encode() + unit
    return MAX_TIMEOUT


#: Encoded metadata fields by (key, value): most repeat on every call (the content type, the
#: forwarded host and client), so each is encoded once. Emptied when full.
_FIELDS: dict[tuple[str, str | bytes], bytes] = {}
MAX_REMEMBERED_FIELDS: Final = 512


def metadata_fields(metadata: Sequence[tuple[str, str | bytes]]) -> bytes | None:
    """The header fields of request metadata, or None when an entry is not what gRPC allows on
    the wire (a key that is not lower-case token characters, a text value that is not printable
    ASCII, a `-bin` value that is not bytes): grpc's own client then refuses it in its words."""
    out = []
    for entry in metadata:
        field = _FIELDS.get(entry)
        if field is None:
            field = metadata_field(*entry)
            if field is None:
                return None
            if entry[0] != REQUEST_ID_KEY:  # new on every call (P11): not worth remembering
                if len(_FIELDS) >= MAX_REMEMBERED_FIELDS:
                    _FIELDS.clear()
                _FIELDS[entry] = field
        out.append(field)
    return b"".join(out)


def metadata_field(key: str, value: str | bytes) -> bytes | None:
    """One entry of `metadata_fields`, or None if gRPC would refuse it."""
    if not VALID_KEY.fullmatch(key):
        return None
    if key.endswith("-bin"):
        if not isinstance(value, bytes):
            return None
        raw = base64.b64encode(value).rstrip(b"=")
    else:
        if not isinstance(value, str) or not (value.isascii() and value.isprintable()):
            return None
        raw = value.encode("ascii")
    return literal(key.encode("ascii"), raw)


#: Response fields that are HTTP/2 or gRPC framing, not metadata (grpc's clients hide them).
_FRAMING: Final = frozenset(
    (b":status", b"content-type", b"grpc-encoding", b"grpc-accept-encoding", b"grpc-status",
     b"grpc-message", b"te", b"content-length")
)  # fmt: skip


def response_metadata(fields: Iterable[tuple[bytes, bytes]]) -> Metadata:
    """Metadata as grpc.aio gives it: str keys, str values, `-bin` values decoded to bytes."""
    out: list[tuple[str, str | bytes]] = []
    for key, value in fields:
        if key in _FRAMING:
            continue
        name = key.decode("ascii", "replace")
        if name.endswith("-bin"):
            try:
                out.append((name, parse_base64(value.decode("latin-1"))))
            except ValueError:
                continue  # grpc-core drops an undecodable binary value too
        else:
            out.append((name, value.decode("latin-1")))
    return tuple(out)


def http_status_code(status: bytes) -> grpc.StatusCode:
    """The gRPC code of a response without `grpc-status` (grpc's http-grpc-status-mapping.md)."""
    return {
        b"400": grpc.StatusCode.INTERNAL,
        b"401": grpc.StatusCode.UNAUTHENTICATED,
        b"403": grpc.StatusCode.PERMISSION_DENIED,
        b"404": grpc.StatusCode.UNIMPLEMENTED,
        b"429": grpc.StatusCode.UNAVAILABLE,
        b"502": grpc.StatusCode.UNAVAILABLE,
        b"503": grpc.StatusCode.UNAVAILABLE,
        b"504": grpc.StatusCode.UNAVAILABLE,
    }.get(status, grpc.StatusCode.UNKNOWN)


def call_status(
    headers: Sequence[tuple[bytes, bytes]] | None, trailers: Sequence[tuple[bytes, bytes]]
) -> tuple[grpc.StatusCode, str]:
    """The code and message of a finished call from its trailers (or, for a trailers-only
    response, its one header block, `headers` None). A response that is not gRPC at all (an
    HTTP status other than 200, or no `grpc-status`) gets a code from its HTTP status."""
    status = message = http_status = None
    for key, value in trailers:
        if key == b"grpc-status":
            status = value
        elif key == b"grpc-message":
            message = value
        elif key == b":status":
            http_status = value
    if headers is not None:
        http_status = next((v for k, v in headers if k == b":status"), None)
    if http_status is not None and http_status != b"200":
        text = http_status.decode("ascii", "replace")
        return http_status_code(http_status), f"Received http2 header with status: {text}"
    if status is None:
        return grpc.StatusCode.UNKNOWN, "upstream sent no grpc-status"
    code = _CODES.get(int(status)) if status.isdigit() else None
    if code is None:
        return grpc.StatusCode.UNKNOWN, f"upstream sent grpc-status {status[:16]!r}"
    text = unquote_to_bytes(message).decode("utf-8", "replace") if message else ""
    return code, text


def unpack_message(data: bytes | bytearray, limit: int) -> bytes | tuple[grpc.StatusCode, str]:
    """The one message of a unary response's DATA, or the (code, message) of why not: too large
    for `limit` (grpc-core's words), compressed (not asked for), or not length-prefixed."""
    if len(data) < 5:
        return grpc.StatusCode.INTERNAL, "upstream sent no response message"
    size = int.from_bytes(data[1:5], "big")
    if size > limit:
        return (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Received message larger than max ({size} vs. {limit})",
        )
    if data[0] != 0:
        return grpc.StatusCode.INTERNAL, "upstream sent a compressed message it was not asked for"
    if len(data) != size + 5:
        return grpc.StatusCode.INTERNAL, "upstream sent a malformed response message"
    return bytes(data[5:])
