"""`classify_failure` and `unreachable_is_lasting`: grpc-core's words for a failed upstream call
become the code, message and HTTP status a REST client sees (docs/decisions.md T70–T73)."""

from __future__ import annotations

import grpc
import pytest

from taskgate.gateway.upstream import UpstreamFailure, classify_failure, unreachable_is_lasting

UP = "up:1"
LAST = "failed to connect to all addresses; last error: "
SILENT = (
    f"{LAST}UNKNOWN: ipv4:127.0.0.1:9: connection attempt timed out before receiving SETTINGS frame"
)
HTTP1 = (
    f"{LAST}INTERNAL: ipv4:127.0.0.1:9: Failed parsing HTTP/2 (Expected SETTINGS frame as the "
    "first frame, got frame type 80) (Trying to connect an http1.x server (HTTP status 400))"
)
NOISE = f"{LAST}INTERNAL: ipv4:127.0.0.1:9: Failed parsing HTTP/2 (frame too large)"
REFUSED = f"{LAST}UNKNOWN: ipv4:127.0.0.1:9: Failed to connect to remote host: Connection refused"
UNTRUSTED = f"{LAST}UNKNOWN: ipv4:127.0.0.1:9: Ssl handshake failed: CERTIFICATE_VERIFY_FAILED"
HARD_LIMIT = "received metadata size exceeds hard limit (value length 20000 vs. 16384)"
TOO_LARGE = (
    f"upstream {UP} refused the request's metadata as too large; send fewer or smaller "
    "Authorization and Grpc-Metadata-* headers"
)
U, D, INT, R = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
HANDSHAKE = "it accepted the connection but never completed the HTTP/2 handshake"

CASES = [
    (U, SILENT, UpstreamFailure(D, f"upstream {UP} did not answer: {HANDSHAKE}")),
    (
        U,
        HTTP1,
        UpstreamFailure(
            INT, f"upstream {UP} is not a gRPC server: it answered with HTTP/1.x, not gRPC", 502
        ),
    ),
    (
        U,
        NOISE,
        UpstreamFailure(
            INT, f"upstream {UP} is not a gRPC server: it does not speak HTTP/2 (gRPC)", 502
        ),
    ),
    (U, REFUSED, UpstreamFailure(U, f"upstream {UP} is unavailable: connection refused")),
    (R, HARD_LIMIT, UpstreamFailure(R, TOO_LARGE, 431)),
    # the service's own words pass unchanged
    (U, "the shelf is closed", UpstreamFailure(U, "the shelf is closed")),
    (R, "quota exceeded", UpstreamFailure(R, "quota exceeded")),
    (D, "Deadline Exceeded", UpstreamFailure(D, "Deadline Exceeded")),
]


@pytest.mark.parametrize(("code", "details", "expected"), CASES)
def test_classify_failure(code: grpc.StatusCode, details: str, expected: UpstreamFailure) -> None:
    assert classify_failure(code, details, UP) == expected


@pytest.mark.parametrize(
    ("details", "lasting"),
    [
        (SILENT, False),
        (REFUSED, False),
        (f"{LAST}UNKNOWN: DNS resolution failed for nowhere:1", False),
        (HTTP1, True),
        (NOISE, True),
        (UNTRUSTED, True),
        ("the shelf is closed", False),
    ],
)
def test_unreachable_is_lasting(details: str, lasting: bool) -> None:
    assert unreachable_is_lasting(details) is lasting
