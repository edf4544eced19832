"""JSON routes' media types (decision D16) and the CORS decision (gateway/cors.py)."""

from __future__ import annotations

import pytest

from taskgate.gateway.cors import cors_headers
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.media import check_json_media_type, is_json_media_type


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
                "Access-Control-Expose-Headers": "Grpc-Metadata-Content-Type",
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
