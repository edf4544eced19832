"""gateway/encoding.py: Accept-Encoding negotiation (tables) and which responses are gzipped."""

from __future__ import annotations

import gzip

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from taskgate.gateway.encoding import (
    EXECUTOR_BYTES,
    MIN_BYTES,
    accepts_gzip,
    compress_response,
    vary_with,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, br", False),
        ("br;q=1.0, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;Q=0.001", True),
        ("*", True),
        ("*;q=0", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0, *", False),  # named wins over *
        ("identity;q=1, *;q=0.1", True),
        ("gzip;q=abc", False),  # malformed: ignored
        ("gzip;q=2", False),
        ("gzip;q=abc, *", True),
        (" , ,gzip , ", True),
        ("gzipx, xgzip", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "Accept-Encoding"),
        ("", "Accept-Encoding"),
        ("Origin", "Origin, Accept-Encoding"),
        ("origin, accept-encoding", "origin, accept-encoding"),
        ("*", "*"),
    ],
)
def test_vary_with(existing: str | None, expected: str) -> None:
    assert vary_with(existing, "Accept-Encoding") == expected


def request(accept_encoding: str | None = "gzip") -> web.Request:
    headers = {} if accept_encoding is None else {"Accept-Encoding": accept_encoding}
    return make_mocked_request("GET", "/x", headers=headers)


BIG = b'{"tasks":[' + b'{"id":"abc","fingerprint":"xyz"},' * 100 + b"{}]}"


async def test_a_large_body_is_gzipped_with_vary() -> None:
    response = web.Response(body=BIG, content_type="application/json")
    await compress_response(request(), response)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert isinstance(response.body, bytes)
    assert gzip.decompress(response.body) == BIG


async def test_over_the_executor_size_it_is_gzipped_in_a_thread() -> None:
    body = b"0123456789abcdef" * (EXECUTOR_BYTES // 8)
    response = web.Response(body=body)
    await compress_response(request(), response)
    assert isinstance(response.body, bytes)
    assert gzip.decompress(response.body) == body


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br"])
async def test_not_accepted_stays_identity_but_varies(accept: str | None) -> None:
    response = web.Response(body=BIG)
    await compress_response(request(accept), response)
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.body == BIG


@pytest.mark.parametrize(
    "response",
    [
        web.Response(body=b"x" * (MIN_BYTES - 1)),  # under the threshold
        web.Response(body=BIG, headers={"Content-Encoding": "br"}),  # already encoded
        web.Response(status=304, body=BIG),
        web.StreamResponse(),  # a stream
    ],
    ids=["small", "encoded", "304", "stream"],
)
async def test_untouched(response: web.StreamResponse) -> None:
    before = dict(response.headers)
    await compress_response(request(), response)
    assert dict(response.headers) == before


async def test_incompressible_bodies_are_sent_as_they_are() -> None:
    body = bytes(range(256)) * 4 + gzip.compress(BIG)  # varied bytes, then compressed data
    noise = gzip.compress(body)
    response = web.Response(body=noise)
    await compress_response(request(), response)
    assert "Content-Encoding" not in response.headers
    assert response.body == noise
