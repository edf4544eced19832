"""JSON routes' media types (decision D16) and the CORS decision (gateway/cors.py)."""

from __future__ import annotations

import pytest

from taskgate.gateway.cors import EXPOSED, cors_headers
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.media import (
    check_json_media_type,
    is_json_media_type,
    is_stream_media_type,
)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/octet-stream", False),
        ("application/jsonx", False),
        ("json", False),
        ("text/json+", False),
    ],
)
def test_json_media_types(content_type: str, accepted: bool) -> None:
    assert is_json_media_type(content_type) is accepted


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("", True),
        ("application/json", True),
        ("application/x-ndjson", True),
        ("application/JSONL; charset=utf-8", True),
        ("application/x-jsonlines", False),
        ("text/plain", False),
    ],
)
def test_stream_media_types(content_type: str, accepted: bool) -> None:
    """T62: a streamed body may also be newline-delimited JSON; a unary one may not."""
    assert is_stream_media_type(content_type) is accepted
    if content_type.startswith("application/x-ndjson"):
        assert not is_json_media_type(content_type)


def test_415_names_the_media_type() -> None:
    with pytest.raises(TranscodeError) as failure:
        check_json_media_type("text/plain; charset=utf-8")
    assert failure.value.http_status == 415
    assert 'unsupported media type "text/plain"' in str(failure.value)


ORIGINS = frozenset({"https://ui.example.com"})
UI = "https://ui.example.com"


@pytest.mark.parametrize(
    ("method", "headers", "preflight", "added"),
    [
        ("GET", {}, False, {"Vary": "Origin"}),
        ("GET", {"Origin": "https://evil.example"}, False, {"Vary": "Origin"}),
        (
            "POST",
            {"Origin": UI},
            False,
            {
                "Vary": "Origin",
                "Access-Control-Allow-Origin": UI,
                "Access-Control-Expose-Headers": EXPOSED,
            },
        ),
        (
            "OPTIONS",
            {
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, kubeflow-userid",
            },
            True,
            {
                "Vary": "Origin",
                "Access-Control-Allow-Origin": UI,
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "content-type, kubeflow-userid",
                "Access-Control-Max-Age": "600",
            },
        ),
        (
            "OPTIONS",
            {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            False,
            {"Vary": "Origin"},
        ),
        (
            "OPTIONS",
            {"Origin": UI, "Access-Control-Request-Method": "CONNECT"},
            False,
            {"Vary": "Origin"},
        ),
    ],
)
def test_cors_headers(
    method: str, headers: dict[str, str], preflight: bool, added: dict[str, str]
) -> None:
    assert cors_headers(method, headers, ORIGINS) == (preflight, added)


def test_grpc_web_and_connect_headers_pass_and_are_exposed() -> None:
    """T86: a browser's gRPC-Web or Connect preflight passes, and its client can read the
    status, the encodings and the request id."""
    asked = "content-type, x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version"
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked + ", connect-timeout-ms, authorization",
    }
    answerable, added = cors_headers("OPTIONS", preflight, ORIGINS)
    assert answerable
    assert added["Access-Control-Allow-Headers"] == preflight["Access-Control-Request-Headers"]
    _, added = cors_headers("POST", {"Origin": UI}, ORIGINS)
    exposed = {h.strip().lower() for h in added["Access-Control-Expose-Headers"].split(",")}
    assert exposed >= {
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "connect-content-encoding",
        "x-request-id",
        "grpc-metadata-content-type",
    }
