"""What every request goes through before it is served (gateway/app.py `handle` and `_admit`):
the not-ready answer of a gateway waiting for its upstream (docs/decisions.md T73), and the
door of a gRPC-Web or Connect call, known before admission, so its in-flight gauge, its access
line and a `--max-concurrent-calls` refusal are its own protocol's (T80)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from taskgate.gateway import connect, envelope
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
TABLE = fixture_table()
GET_BOOK = "/tgtest.Library/GetBook"
STREAM_BOOKS = "/tgtest.Library/StreamBooks"
BOOK_URL = "/v1/shelves/s/books/b"
RESOURCE_EXHAUSTED = str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])


def in_flight(door: str) -> float:
    return REGISTRY.get_sample_value("taskgate_calls_in_flight", {"door": door}) or 0.0


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "taskgate.access"]


# --- not ready (T73) ----------------------------------------------------------------------


async def test_not_ready_is_an_observed_503_until_the_reason_goes(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    reason: list[str | None] = ["upstream u:1 is not ready: cannot reach upstream u:1: refused"]
    invoker = FakeInvoker()
    app = create_gateway_app(TABLE, invoker, GatewayOptions.generic(), not_ready=lambda: reason[0])
    client = await aiohttp_client(app)
    with caplog.at_level(logging.INFO, "taskgate.access"):
        response = await client.get(BOOK_URL, headers={"X-Request-Id": "waiting-1"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-Id"] == "waiting-1"
    assert await response.json() == {"code": 14, "message": reason[0]}
    (line,) = access_lines(caplog)
    assert "code=UNAVAILABLE status=503" in line
    assert "request_id=waiting-1" in line
    health = await client.get("/healthz")
    assert (health.status, (await health.json())["message"]) == (503, reason[0])
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/metrics")).status == 200
    assert invoker.calls == []

    reason[0] = None
    assert (await client.get(BOOK_URL)).status == 200
    assert (await client.get("/healthz")).status == 200


async def test_a_web_call_while_not_ready_is_refused_too(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker()
    app = create_gateway_app(
        TABLE, invoker, GatewayOptions.generic(), not_ready=lambda: "not ready: waiting"
    )
    client = await aiohttp_client(app)
    response = await client.post(GET_BOOK, data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 503
    assert invoker.calls == []


# --- the door, known before admission (T80) -----------------------------------------------


@pytest.fixture
async def held(aiohttp_client: ClientFactory) -> AsyncIterator[tuple[TestClient, FakeInvoker]]:  # type: ignore[type-arg]
    """A gateway allowing one call at a time, with one REST call holding it."""
    invoker = FakeInvoker(gate=asyncio.Event())
    app = create_gateway_app(TABLE, invoker, GatewayOptions.generic(max_concurrent_calls=1))
    client = await aiohttp_client(app)
    holder = asyncio.ensure_future(client.get(BOOK_URL))
    for _ in range(200):
        if invoker.calls:
            break
        await asyncio.sleep(0.01)
    assert invoker.calls
    yield client, invoker
    assert invoker.gate is not None
    invoker.gate.set()
    (await holder).release()


def grpc_web_trailers(body: bytes) -> dict[str, str]:
    (last,) = envelope.split_frames(body, 1 << 20)
    assert last.flags == 0x80
    lines = last.payload.decode().split("\r\n")
    return dict(line.split(":", 1) for line in lines if line)


async def refused_in(
    client: TestClient,  # type: ignore[type-arg]
    content_type: str,
    method: str = GET_BOOK,
) -> ClientResponse:
    response = await client.post(
        method, data=envelope.frame(0, b""), headers={"Content-Type": content_type}
    )
    assert response.headers["Retry-After"] == "1"
    return response


async def test_grpc_web_refused_at_the_limit_gets_its_trailer_frame(
    held: tuple[TestClient, FakeInvoker],  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, invoker = held
    with caplog.at_level(logging.INFO, "taskgate.access"):
        binary = await refused_in(client, "application/grpc-web+proto")
    assert binary.status == 200
    assert binary.headers["Content-Type"] == "application/grpc-web+proto"
    trailers = grpc_web_trailers(await binary.read())
    assert trailers["grpc-status"] == RESOURCE_EXHAUSTED
    assert "too many calls in flight" in trailers["grpc-message"]
    (line,) = access_lines(caplog)
    assert line.startswith(f"door=grpc-web method={GET_BOOK} code=RESOURCE_EXHAUSTED")

    text = await refused_in(client, "application/grpc-web-text")
    assert text.headers["Content-Type"] == "application/grpc-web-text+proto"
    decoded = grpc_web_trailers(base64.b64decode(await text.read()))
    assert decoded["grpc-status"] == RESOURCE_EXHAUSTED
    assert len(invoker.calls) == 1  # only the call holding the gateway


async def test_connect_refused_at_the_limit_gets_its_error(
    held: tuple[TestClient, FakeInvoker],  # type: ignore[type-arg]
) -> None:
    client, _ = held
    unary = await refused_in(client, "application/json")
    assert unary.status == 429
    assert unary.headers["Content-Type"] == "application/json"
    body = await unary.json()
    assert body["code"] == "resource_exhausted"
    assert "too many calls in flight" in body["message"]

    stream = await refused_in(client, "application/connect+json", STREAM_BOOKS)
    assert stream.status == 200
    (end,) = envelope.split_frames(await stream.read(), 1 << 20)
    assert end.flags == connect.END_STREAM_FLAG
    assert json.loads(end.payload)["error"]["code"] == "resource_exhausted"


async def test_rest_refused_at_the_limit_keeps_its_json(
    held: tuple[TestClient, FakeInvoker],  # type: ignore[type-arg]
) -> None:
    client, _ = held
    response = await client.get(BOOK_URL)
    assert response.status == 429
    assert (await response.json())["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


async def test_the_in_flight_gauge_counts_a_web_call_under_its_door(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = FakeInvoker(gate=asyncio.Event())
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GatewayOptions.generic()))
    before = in_flight("connect"), in_flight("rest")
    call = asyncio.ensure_future(
        client.post(GET_BOOK, data=b"{}", headers={"Content-Type": "application/json"})
    )
    for _ in range(200):
        if invoker.calls:
            break
        await asyncio.sleep(0.01)
    assert (in_flight("connect"), in_flight("rest")) == (before[0] + 1, before[1])
    assert invoker.gate is not None
    invoker.gate.set()
    response = await call
    assert response.status == 200
    assert (in_flight("connect"), in_flight("rest")) == before


# --- Connect: unsupported compression is `unimplemented` ----------------------------------


@pytest.mark.parametrize("coding", ["br", "gzip, br", "compress"])
def test_unsupported_content_encoding_is_unimplemented(coding: str) -> None:
    with pytest.raises(TranscodeError) as raised:
        connect.check_unary_encoding(coding)
    assert raised.value.status.code == grpc.StatusCode.UNIMPLEMENTED
    assert raised.value.headers == {"Accept-Encoding": "gzip, deflate"}
    with pytest.raises(TranscodeError) as streamed:
        connect.check_stream_encoding(coding)
    assert streamed.value.status.code == grpc.StatusCode.UNIMPLEMENTED
    assert streamed.value.headers == {"Connect-Accept-Encoding": "gzip"}


@pytest.mark.parametrize("coding", ["", "identity", "gzip", "GZIP"])
def test_supported_encodings_pass(coding: str) -> None:
    connect.check_unary_encoding(coding)
    connect.check_stream_encoding(coding)


async def test_connect_unary_with_unsupported_encoding_is_501(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = FakeInvoker()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GatewayOptions.generic()))
    response = await client.post(
        GET_BOOK,
        data=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "compress"},
    )
    assert response.status == 501
    assert response.headers["Accept-Encoding"] == "gzip, deflate"
    body = await response.json()
    assert body["code"] == "unimplemented"
    assert 'unsupported Content-Encoding "compress"' in body["message"]
    assert invoker.calls == []


async def test_connect_stream_with_unsupported_encoding_is_unimplemented(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = FakeInvoker()
    client = await aiohttp_client(create_gateway_app(TABLE, invoker, GatewayOptions.generic()))
    request = envelope.frame(0, pb.StreamBooksRequest().SerializeToString())
    response = await client.post(
        STREAM_BOOKS,
        data=request,
        headers={"Content-Type": "application/connect+proto", "Connect-Content-Encoding": "br"},
    )
    assert response.status == 200
    assert response.headers["Connect-Accept-Encoding"] == "gzip"
    (end,) = envelope.split_frames(await response.read(), 1 << 20)
    assert json.loads(end.payload)["error"]["code"] == "unimplemented"
    assert invoker.calls == []
