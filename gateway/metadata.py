"""HTTP headers to gRPC metadata and back, and `Grpc-Timeout`. Pure.

Forwarded (grpc-gateway's default matcher; docs/decisions.md T42, T43, T50): `authorization`,
`grpc-metadata-<key>` with the prefix stripped (`-bin` values base64-decoded), and the options'
allow-list (KFP: `kubeflow-userid`). Keys are lower-cased; non-ASCII values are dropped. Like
grpc-gateway, the IANA permanent request headers also go as `grpcgateway-<name>`, and
`x-forwarded-host` / `x-forwarded-for` say where the call came from; these keys are the
gateway's own, so a client cannot set them through `Grpc-Metadata-*`.

`Grpc-Timeout` takes gRPC's full range (8 digits of hours), clamped to MAX_TIMEOUT_SECONDS: a
longer deadline overflows gRPC's own clock (T44).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping

from taskgate.access import REQUEST_ID_KEY
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_paths import parse_base64
from taskgate.gateway.options import GatewayOptions
from taskgate.rpc import CallOptions, Metadata

METADATA_HEADER_PREFIX = "grpc-metadata-"
TIMEOUT_HEADER = "grpc-timeout"
#: gRPC's TimeoutValue is at most 8 digits (PROTOCOL-HTTP2.md).
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_SECONDS_PER_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
#: what a gRPC metadata key may be made of
VALID_KEY = re.compile(r"[0-9a-z_.\-]+")
#: keys gRPC itself owns; a client must not set them through `Grpc-Metadata-*`.
_RESERVED_KEYS = frozenset({"content-type", "te", "user-agent", "host"})
#: metadata the gateway computes itself (T50); `Grpc-Metadata-*` may not supply them.
PERMANENT_HEADER_PREFIX = "grpcgateway-"
FORWARDED_HOST_KEY = "x-forwarded-host"
FORWARDED_FOR_KEY = "x-forwarded-for"
_GATEWAY_KEYS = frozenset({FORWARDED_HOST_KEY, FORWARDED_FOR_KEY})
#: grpc-gateway's `isPermanentHTTPHeader` list (IANA's permanent message headers), lower-case.
#: `host` is on it, but Go's net/http moves Host out of the header map, so grpc-gateway never
#: forwards it as `grpcgateway-host`; it reaches the upstream as `x-forwarded-host` instead.
PERMANENT_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "date",
        "expect",
        "from",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "user-agent",
        "via",
        "warning",
    }
)
#: The longest deadline a call gets: 100 years. gRPC's 8 digits of hours (~11,400 years) would
#: overflow the nanosecond clock of gRPC's C core (~292 years), which then expires the call at
#: once; grpc-go clamps the same way. Any longer timeout is, to a caller, no deadline at all.
MAX_TIMEOUT_SECONDS = 100 * 365 * 24 * 3600.0


def parse_grpc_timeout(text: str) -> float:
    """`Grpc-Timeout` in seconds: `"100m"` is 0.1, `"5S"` is 5.0, at most MAX_TIMEOUT_SECONDS;
    TranscodeError if malformed."""
    found = _TIMEOUT.fullmatch(text.strip())
    if found is None:
        raise TranscodeError.invalid(
            f'invalid Grpc-Timeout header "{text}": expected up to 8 digits and a unit '
            "(H, M, S, m, u or n)"
        )
    return min(int(found.group(1)) * _SECONDS_PER_UNIT[found.group(2)], MAX_TIMEOUT_SECONDS)


def metadata_from_headers(
    headers: Iterable[tuple[str, str]], options: GatewayOptions
) -> list[tuple[str, str | bytes]]:
    """The request metadata to forward, in header order."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        key = name.lower()
        if key.startswith(METADATA_HEADER_PREFIX):
            key = key[len(METADATA_HEADER_PREFIX) :]
            if not VALID_KEY.fullmatch(key) or _is_reserved(key):
                continue
        elif key != "authorization" and key not in options.forwarded_headers:
            continue
        if key.endswith("-bin"):
            metadata.append((key, binary_value(name, value)))
        elif value.isascii():
            metadata.append((key, value))
    return metadata


def _is_reserved(key: str) -> bool:
    return (
        key.startswith(("grpc-", PERMANENT_HEADER_PREFIX))
        or key in _RESERVED_KEYS
        or key in _GATEWAY_KEYS
    )


def gateway_metadata(
    headers: Iterable[tuple[str, str]], remote: str | None
) -> list[tuple[str, str | bytes]]:
    """What grpc-gateway adds on its own (T50): `grpcgateway-<name>` for each permanent header,
    then `x-forwarded-host` (the first X-Forwarded-Host, else Host) and `x-forwarded-for` (every
    X-Forwarded-For value, then `remote`, the client's address, joined with ", ")."""
    metadata: list[tuple[str, str | bytes]] = []
    forwarded_hosts: list[str] = []
    hosts: list[str] = []
    forwarded_for: list[str] = []
    for name, value in headers:
        key = name.lower()
        if not _is_printable(value):
            continue  # gRPC metadata text is printable ASCII
        if key in PERMANENT_HEADERS:
            metadata.append((PERMANENT_HEADER_PREFIX + key, value))
        elif key == FORWARDED_HOST_KEY:
            forwarded_hosts.append(value)
        elif key == "host":
            hosts.append(value)
        elif key == FORWARDED_FOR_KEY:
            forwarded_for.append(value)
    host = next((h for h in (*forwarded_hosts[:1], *hosts[:1]) if h), None)
    if host is not None:
        metadata.append((FORWARDED_HOST_KEY, host))
    if remote and _is_printable(remote):
        forwarded_for.append(remote)
    if forwarded_for:
        metadata.append((FORWARDED_FOR_KEY, ", ".join(forwarded_for)))
    return metadata


def call_options_from_headers(
    headers: Mapping[str, str],
    options: GatewayOptions,
    *,
    streaming: bool = False,
    remote: str | None = None,
    request_id: str | None = None,
) -> CallOptions:
    """Metadata and deadline for one call; the header wins over `options.default_timeout`,
    which applies to unary calls only (a stream may rightly run for as long as it likes).
    `remote` is the client's address, for `x-forwarded-for`; `request_id` goes last as
    `x-request-id`, in place of any the caller sent (P11)."""
    timeout_text = headers.get(TIMEOUT_HEADER)
    default = None if streaming else options.default_timeout
    timeout = default if timeout_text is None else parse_grpc_timeout(timeout_text)
    if timeout is not None:  # `--timeout` may be as large as any float
        timeout = min(timeout, MAX_TIMEOUT_SECONDS)
    metadata = metadata_from_headers(headers.items(), options)
    metadata += gateway_metadata(headers.items(), remote)
    if request_id is not None:
        metadata = [item for item in metadata if item[0] != REQUEST_ID_KEY]
        metadata.append((REQUEST_ID_KEY, request_id))
    return CallOptions(metadata=tuple(metadata), timeout=timeout)


def headers_from_metadata(
    header_metadata: Metadata, trailing_metadata: Metadata = ()
) -> list[tuple[str, str]]:
    """`Grpc-Metadata-<Key>` for response headers, `Grpc-Trailer-<Key>` for trailers, with the
    key in canonical header case as Go's net/http writes it (`Grpc-Metadata-Content-Type`)."""
    headers = [(f"Grpc-Metadata-{_canonical(k)}", _text(v)) for k, v in header_metadata]
    headers += [(f"Grpc-Trailer-{_canonical(k)}", _text(v)) for k, v in trailing_metadata]
    return [(name, value) for name, value in headers if is_header_safe(value)]


def _canonical(key: str) -> str:
    return "-".join(part.capitalize() for part in key.split("-"))


def binary_value(header: str, value: str) -> bytes:
    """A `-bin` header's value (every door's): base64, standard or URL-safe, padded or not;
    400 naming the header otherwise."""
    try:
        return parse_base64(value.strip())
    except ValueError:
        raise TranscodeError.invalid(f'header "{header}" must be base64-encoded') from None


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _is_printable(value: str) -> bool:
    """Printable ASCII only (space to `~`): str's own checks, not a loop over the characters."""
    return value.isascii() and value.isprintable()


def is_header_safe(value: str) -> bool:
    """Whether a header can carry `value` as it is (ASCII, no line breaks)."""
    return value.isascii() and "\r" not in value and "\n" not in value
