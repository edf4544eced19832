"""Client-streaming and bidirectional methods over REST (T62, T63): `taskgate gateway` in front of
the test upstream (its own process), NDJSON requests in, a JSON answer or NDJSON lines out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.unit.gateway.test_trailers import exchange
from tests.upstream_process import UpstreamProcess, running_upstream

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
IMPORT_PATH = "/v1/shelves/import/books"
CHAT_PATH = "/v1/shelves/s1/books:chat"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


async def gateway(upstream: UpstreamProcess, options: GatewayOptions) -> Any:
    return gateway_serving(StandaloneConfig(upstream=upstream.target, port=0, options=options))


@pytest.fixture
async def port(upstream: UpstreamProcess) -> AsyncIterator[int]:
    async with await gateway(upstream, GatewayOptions.generic()) as running:
        yield running.port


def ndjson(*documents: object) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in documents)


async def post(port: int, path: str, body: Any, **headers: str) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}{path}", data=body, headers={**JSON, **headers}) as r,
    ):
        return r.status, r.headers, await r.read()


# --- client streaming ----------------------------------------------------------------------------


async def test_client_streaming_imports_every_line(port: int) -> None:
    body = ndjson({"title": "a"}, {"title": "b", "pageCount": "7"}, {"title": "c"})

    status, headers, raw = await post(port, IMPORT_PATH, body, **{"Grpc-Metadata-X-User": "ada"})

    # Before T62 the route was skipped and CreateBook answered this URL with one book.
    assert status == 200
    assert json.loads(raw) == {
        "books": [
            {"name": "shelves/import/books/0", "title": "a"},
            {"name": "shelves/import/books/1", "title": "b", "pageCount": "7"},
            {"name": "shelves/import/books/2", "title": "c"},
        ],
        "totalSize": 3,
    }
    assert headers["Grpc-Metadata-X-Echo-X-User"] == "ada"


async def test_client_streaming_sends_its_trailers_when_asked(port: int) -> None:
    answer = await exchange(
        ("127.0.0.1", port), "POST", IMPORT_PATH, {"TE": "trailers"}, body=ndjson({}, {})
    )
    assert answer.status == 200
    assert answer.trailers == [("Grpc-Trailer-X-Imported", "2")]


async def test_a_body_sent_in_pieces_is_read_line_by_line(port: int) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"title":', b'"a"}\n{"ti', b'tle":"b"}'):
            yield piece
            await asyncio.sleep(0.01)

    status, _, raw = await post(port, IMPORT_PATH, pieces())

    assert status == 200
    assert [b["title"] for b in json.loads(raw)["books"]] == ["a", "b"]


async def test_an_empty_body_is_a_stream_of_no_requests(port: int) -> None:
    status, _, raw = await post(port, IMPORT_PATH, b"")
    assert (status, json.loads(raw)) == (200, {})


async def test_a_bad_line_is_400_and_the_upstreams_refusal_is_its_status(port: int) -> None:
    status, _, raw = await post(port, IMPORT_PATH, ndjson({"title": "a"}) + b"{not json\n")
    assert status == 400
    assert json.loads(raw)["code"] == 3

    status, _, raw = await post(port, IMPORT_PATH, ndjson({"title": "a"}, {"title": "fail"}))
    assert status == 400
    assert json.loads(raw)["message"] == "book 1 cannot be imported"


async def test_limits_bound_each_line(upstream: UpstreamProcess) -> None:
    options = GatewayOptions.generic(max_body_bytes=64 * 1024, body_timeout=0.5)
    async with await gateway(upstream, options) as running:
        many = b"".join(b"{}" + b" " * 400 + b"\n" for _ in range(400))
        assert len(many) > 2 * options.max_body_bytes  # many small lines: fine all the same
        status, _, raw = await post(running.port, IMPORT_PATH, many)
        assert (status, json.loads(raw)["totalSize"]) == (200, 400)

        status, _, _ = await post(running.port, IMPORT_PATH, ndjson({"title": "x" * 70000}))
        assert status == 413

        async def stalls() -> AsyncIterator[bytes]:
            yield ndjson({"title": "a"})
            await asyncio.sleep(1.5)
            yield ndjson({"title": "b"})

        status, _, raw = await post(running.port, IMPORT_PATH, stalls())
        assert status == 408
        assert "did not arrive within 0.5 seconds" in json.loads(raw)["message"]


async def test_an_http_body_stream_keeps_its_route_and_is_501(port: int) -> None:
    status, _, raw = await post(port, "/v1/shelves/s/books/b:uploadStream", b"raw")
    assert status == 501
    assert "tgtest.Library.UploadStream" in json.loads(raw)["message"]


# --- bidirectional -------------------------------------------------------------------------------


async def test_bidi_answers_each_line_before_the_next_is_sent(port: int) -> None:
    """The second request is only sent once the first answer has arrived: the two directions
    really are concurrent (an HTTP/1.1 body still open while the answer streams)."""
    answered = asyncio.Event()

    async def requests() -> AsyncIterator[bytes]:
        yield ndjson({"bookId": "1", "book": {"title": "one"}})
        await asyncio.wait_for(answered.wait(), 10)
        yield ndjson({"bookId": "2"})

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}{CHAT_PATH}",
            data=requests(),
            headers={**JSON, "Grpc-Metadata-X-User": "ada"},
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Grpc-Metadata-X-Echo-X-User"] == "ada"
        first = json.loads(await response.content.readline())
        answered.set()
        rest = [json.loads(line) for line in (await response.read()).splitlines()]

    assert first == {"result": {"name": "shelves/s1/books/1", "title": "one"}}
    assert rest == [{"result": {"name": "shelves/s1/books/2"}}]


async def test_bidi_failures_after_the_first_answer_end_the_stream_in_band(port: int) -> None:
    status, _, raw = await post(port, CHAT_PATH, ndjson({"bookId": "1"}, {"bookId": "fail"}))
    lines = [json.loads(line) for line in raw.splitlines()]
    assert status == 200
    assert lines[0] == {"result": {"name": "shelves/s1/books/1"}}
    assert lines[-1]["error"]["code"] == 3
    assert lines[-1]["error"]["message"] == "chat failed on request"


async def test_bidi_bad_line_after_the_first_answer_is_an_error_line(port: int) -> None:
    answered = asyncio.Event()

    async def requests() -> AsyncIterator[bytes]:
        yield ndjson({"bookId": "1"})
        await asyncio.wait_for(answered.wait(), 10)  # the 200 status is out
        yield b'{"book":{"pageCount":"many"}}\n'

    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}{CHAT_PATH}", data=requests(), headers=JSON) as r,
    ):
        assert r.status == 200
        first = json.loads(await r.content.readline())
        answered.set()
        rest = [json.loads(line) for line in (await r.read()).splitlines()]

    assert first == {"result": {"name": "shelves/s1/books/1"}}
    [last] = rest
    assert last["error"]["code"] == 3
    assert "page" in last["error"]["message"].lower()


async def test_bidi_bad_first_line_is_a_plain_400(port: int) -> None:
    status, _, raw = await post(port, CHAT_PATH, b"[1, 2]\n")
    assert status == 400
    assert json.loads(raw)["code"] == 3
