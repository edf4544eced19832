"""malformed_request_status: the status and fixed message of each request aiohttp cannot parse,
and of the rare failures of aiohttp's own machinery (docs/decisions.md T52)."""

from __future__ import annotations

import grpc
import pytest
from aiohttp import http_exceptions

from taskgate.gateway.errors import INTERNAL_ERROR_MESSAGE
from taskgate.gateway.http_server import (
    MAX_HEADER_BYTES,
    MAX_REQUEST_LINE_BYTES,
    malformed_request_status,
)

SECRET = "SECRET-BYTES"


@pytest.mark.parametrize(
    ("status", "exc", "expected"),
    [
        (400, http_exceptions.LineTooLong(SECRET, MAX_REQUEST_LINE_BYTES), 414),
        (400, http_exceptions.LineTooLong(SECRET, MAX_HEADER_BYTES), 431),
        (400, http_exceptions.BadHttpMessage("Too many headers received"), 431),
        (400, http_exceptions.BadHttpMethod(SECRET), 400),
        (400, http_exceptions.BadStatusLine(SECRET), 400),
        (400, http_exceptions.InvalidURLError(SECRET), 400),
        (400, http_exceptions.InvalidHeader(SECRET), 400),
        (400, http_exceptions.BadHttpMessage(f"Missing 'Host' header: {SECRET}"), 400),
        (400, None, 400),
    ],
)
def test_client_faults_are_invalid_argument_without_the_requests_bytes(
    status: int, exc: BaseException | None, expected: int
) -> None:
    got, error = malformed_request_status(status, exc)
    assert got == expected
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert SECRET not in error.message


def test_aiohttps_own_failures_keep_their_status() -> None:
    status, error = malformed_request_status(500, RuntimeError(SECRET))
    assert (status, error.code) == (500, grpc.StatusCode.INTERNAL)
    assert error.message == INTERNAL_ERROR_MESSAGE
    status, error = malformed_request_status(504, None)
    assert (status, error.code) == (504, grpc.StatusCode.DEADLINE_EXCEEDED)
