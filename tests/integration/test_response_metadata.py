"""Response metadata on every REST answer (T60, T61): `Grpc-Metadata-*` headers on errors and
streams too, and trailing metadata as real HTTP trailers; through `taskgate gateway` in front of
the test upstream (its own process), and through `taskgate serve`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.servers import Taskgate
from tests.unit.gateway.test_trailers import exchange
from tests.upstream_process import UpstreamProcess, running_upstream

pytestmark = pytest.mark.integration

USER = {"Grpc-Metadata-X-User": "ada"}
FAIL = json.dumps({"code": 5, "message": "gone", "withMetadata": True, "withDetails": True})


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


async def address(upstream: UpstreamProcess, options: GatewayOptions) -> Any:
    return gateway_serving(StandaloneConfig(upstream=upstream.target, port=0, options=options))


@pytest.fixture
async def generic(upstream: UpstreamProcess) -> AsyncIterator[tuple[str, int]]:
    async with await address(upstream, GatewayOptions.generic()) as running:
        yield ("127.0.0.1", running.port)


@pytest.fixture
async def kfp(upstream: UpstreamProcess) -> AsyncIterator[tuple[str, int]]:
    async with await address(upstream, GatewayOptions.kfp()) as running:
        yield ("127.0.0.1", running.port)


async def test_an_error_carries_the_calls_header_metadata(generic: tuple[str, int]) -> None:
    answer = await exchange(generic, "POST", "/v1/fail", USER, body=FAIL.encode())

    assert answer.status == 404
    assert answer.header("Grpc-Metadata-X-Echo-X-User") == "ada"
    assert answer.trailers == []  # not asked for: the generic preset sends none
    assert json.loads(answer.body)["message"] == "gone"


async def test_an_errors_trailers_are_http_trailers(
    generic: tuple[str, int], kfp: tuple[str, int]
) -> None:
    asked = await exchange(
        generic, "POST", "/v1/fail", {**USER, "TE": "trailers"}, body=FAIL.encode()
    )
    always = await exchange(kfp, "POST", "/v1/fail", USER, body=FAIL.encode())

    for answer in (asked, always):
        assert answer.status == 404
        # grpc-status-details-bin is gRPC's own: its details are in the body, not a trailer.
        assert answer.trailers == [("Grpc-Trailer-X-Failed", "yes")]
        assert answer.header("Grpc-Metadata-X-Echo-X-User") == "ada"
    assert json.loads(always.body)["details"] != []


async def test_a_unary_answers_trailers(kfp: tuple[str, int]) -> None:
    body = json.dumps({"labels": {"trailer": "t1"}}).encode()
    answer = await exchange(kfp, "POST", "/v1/echo", USER, body=body)
    assert answer.status == 200
    assert answer.header("Trailer") == "Grpc-Trailer-X-Trailer"
    assert answer.trailers == [("Grpc-Trailer-X-Trailer", "t1")]
    assert json.loads(answer.body) == {"labels": {"trailer": "t1"}}


async def test_a_server_stream_carries_the_header_metadata(generic: tuple[str, int]) -> None:
    host, port = generic
    url = f"http://{host}:{port}/v1/shelves/s/books:stream?count=2"
    async with aiohttp.ClientSession() as http, http.get(url, headers=USER) as response:
        assert response.status == 200
        assert response.headers["Grpc-Metadata-X-Echo-X-User"] == "ada"
        assert len((await response.read()).splitlines()) == 2


async def test_a_stream_failing_at_once_carries_the_header_metadata(
    generic: tuple[str, int],
) -> None:
    path = "/v1/shelves/s/books:stream?count=0&failCode=9"
    answer = await exchange(generic, "GET", path, USER)
    assert answer.status == 400
    assert answer.header("Grpc-Metadata-X-Echo-X-User") == "ada"
    assert json.loads(answer.body)["message"] == "failed after 0 books"


async def test_serve_answers_a_failed_call_with_its_metadata_header(taskgate: Taskgate) -> None:
    # K18's Grpc-Metadata-Content-Type, on an error the service answers as on a success.
    async with taskgate.http.get(f"{taskgate.tasks_url}?filter=garbage") as response:
        assert response.status == 400
        assert response.headers["Grpc-Metadata-Content-Type"] == "application/grpc"
        assert "Trailer" not in response.headers
