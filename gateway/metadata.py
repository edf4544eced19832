"""HTTP headers to gRPC metadata and back, and `Grpc-Timeout`. Pure.

Forwarded (grpc-gateway's default matcher; docs/decisions.md T42, T43): `authorization`,
`grpc-metadata-<key>` with the prefix stripped (`-bin` values base64-decoded), and the options'
allow-list (KFP: `kubeflow-userid`). Keys are lower-cased; non-ASCII values are dropped.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.field_paths import parse_base64
from taskgate.gateway.options import GatewayOptions
from taskgate.rpc import CallOptions, Metadata

METADATA_HEADER_PREFIX = "grpc-metadata-"
TIMEOUT_HEADER = "grpc-timeout"
#: gRPC's TimeoutValue is at most 8 digits (PROTOCOL-HTTP2.md).
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_SECONDS_PER_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_VALID_KEY = re.compile(r"[0-9a-z_.\-]+")
#: keys gRPC itself owns; a client must not set them through `Grpc-Metadata-*`.
_RESERVED_KEYS = frozenset({"content-type", "te", "user-agent", "host"})


def parse_grpc_timeout(text: str) -> float:
    """`Grpc-Timeout` in seconds: `"100m"` is 0.1, `"5S"` is 5.0; TranscodeError if malformed."""
    found = _TIMEOUT.fullmatch(text.strip())
    if found is None:
        raise TranscodeError.invalid(
            f'invalid Grpc-Timeout header "{text}": expected up to 8 digits and a unit '
            "(H, M, S, m, u or n)"
        )
    return int(found.group(1)) * _SECONDS_PER_UNIT[found.group(2)]


def metadata_from_headers(
    headers: Iterable[tuple[str, str]], options: GatewayOptions
) -> list[tuple[str, str | bytes]]:
    """The request metadata to forward, in header order."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        key = name.lower()
        if key.startswith(METADATA_HEADER_PREFIX):
            key = key[len(METADATA_HEADER_PREFIX) :]
            if not _VALID_KEY.fullmatch(key) or key.startswith("grpc-") or key in _RESERVED_KEYS:
                continue
        elif key != "authorization" and key not in options.forwarded_headers:
            continue
        if key.endswith("-bin"):
            metadata.append((key, _binary_value(name, value)))
        elif value.isascii():
            metadata.append((key, value))
    return metadata


def call_options_from_headers(
    headers: Mapping[str, str], options: GatewayOptions, *, streaming: bool = False
) -> CallOptions:
    """Metadata and deadline for one call; the header wins over `options.default_timeout`,
    which applies to unary calls only (a stream may rightly run for as long as it likes)."""
    timeout_text = headers.get(TIMEOUT_HEADER)
    default = None if streaming else options.default_timeout
    timeout = default if timeout_text is None else parse_grpc_timeout(timeout_text)
    metadata = tuple(metadata_from_headers(headers.items(), options))
    return CallOptions(metadata=metadata, timeout=timeout)


def headers_from_metadata(
    header_metadata: Metadata, trailing_metadata: Metadata = ()
) -> list[tuple[str, str]]:
    """`Grpc-Metadata-<Key>` for response headers, `Grpc-Trailer-<Key>` for trailers, with the
    key in canonical header case as Go's net/http writes it (`Grpc-Metadata-Content-Type`)."""
    headers = [(f"Grpc-Metadata-{_canonical(k)}", _text(v)) for k, v in header_metadata]
    headers += [(f"Grpc-Trailer-{_canonical(k)}", _text(v)) for k, v in trailing_metadata]
    return [(name, value) for name, value in headers if _is_header_safe(value)]


def _canonical(key: str) -> str:
    return "-".join(part.capitalize() for part in key.split("-"))


def _binary_value(header: str, value: str) -> bytes:
    try:
        return parse_base64(value.strip())
    except ValueError:
        raise TranscodeError.invalid(f'header "{header}" must be base64-encoded') from None


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _is_header_safe(value: str) -> bool:
    return value.isascii() and "\r" not in value and "\n" not in value
