"""HTTP trailers (gateway/trailers.py): the framing, pure, and the app's answers read off the
wire by a strict parser of our own (and by curl), since aiohttp's client drops trailers."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from aiohttp.test_utils import TestClient

from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.invoker import UnaryResult
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.trailers import (
    chunk,
    chunked_with_trailers,
    last_chunk,
    trailer_announcement,
    wants_trailers,
)
from taskgate.rpc import RpcStatus, RpcStatusError
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
KFP = GatewayOptions.kfp()
GENERIC = GatewayOptions.generic()
GET_BOOK = "/tgtest.Library/GetBook"


# --- the pure framing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("te", "expected"),
    [
        (None, False),
        ("", False),
        ("trailers", True),
        ("Trailers", True),
        ("gzip, trailers", True),
        ("trailers;q=1", True),
        ("deflate", False),
        ("x-trailers", False),
        ("trailersx", False),
    ],
)
def test_wants_trailers(te: str | None, expected: bool) -> None:
    assert wants_trailers(te) is expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([("Grpc-Trailer-A", "1")], "Grpc-Trailer-A"),
        ([("Grpc-Trailer-A", "1"), ("Grpc-Trailer-B", "2")], "Grpc-Trailer-A, Grpc-Trailer-B"),
        ([("Grpc-Trailer-A", "1"), ("grpc-trailer-a", "2")], "Grpc-Trailer-A"),
    ],
)
def test_trailer_announcement_names_each_field_once(
    fields: list[tuple[str, str]], expected: str
) -> None:
    assert trailer_announcement(fields) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),  # never a zero-size chunk: that would end the body
        (b"a", b"1\r\na\r\n"),
        (b"x" * 26, b"1a\r\n" + b"x" * 26 + b"\r\n"),
        (b"\r\n", b"2\r\n\r\n\r\n"),
    ],
)
def test_chunk(data: bytes, expected: bytes) -> None:
    assert chunk(data) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([], b"0\r\n\r\n"),
        ([("Grpc-Trailer-X", "1")], b"0\r\nGrpc-Trailer-X: 1\r\n\r\n"),
        ([("A", "1"), ("B", "2")], b"0\r\nA: 1\r\nB: 2\r\n\r\n"),
    ],
)
def test_last_chunk(fields: list[tuple[str, str]], expected: bytes) -> None:
    assert last_chunk(fields) == expected


@pytest.mark.parametrize(
    ("body", "fields"),
    [(b"", [("T", "v")]), (b'{"a":1}', [("T", "v")]), (b"x" * 70000, [("A", "1"), ("B", "")])],
)
def test_chunked_with_trailers_round_trips(body: bytes, fields: list[tuple[str, str]]) -> None:
    decoded, trailers = decode_chunked(chunked_with_trailers(body, fields))
    assert (decoded, trailers) == (body, fields)


# --- a strict reader of HTTP/1.1 answers -------------------------------------------------------


@dataclass
class RawAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(found) <= 1, found
        return found[0] if found else None


def decode_chunked(data: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """(body, trailers) of a chunked body; AssertionError unless it is framed exactly."""
    body, trailers, rest = split_chunked(data)
    assert rest == b"", f"bytes after the chunked body: {rest!r}"
    return body, trailers


def split_chunked(data: bytes) -> tuple[bytes, list[tuple[str, str]], bytes]:
    """(body, trailers, what follows) of the chunked body `data` starts with."""
    body = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "unterminated chunk size"
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        assert data[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        body, data = body + data[:size], data[size + 2 :]
    trailers = []
    while True:
        line, sep, data = data.partition(b"\r\n")
        assert sep, "unterminated trailer section"
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        trailers.append((name, value.strip()))
    return body, trailers, data


def parse_answer(raw: bytes) -> RawAnswer:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, "no end of headers"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    answer = RawAnswer(int(status_line.split()[1]), headers, b"", [])
    if (answer.header("Transfer-Encoding") or "").lower() == "chunked":
        answer.body, answer.trailers = decode_chunked(rest)
    else:
        length = answer.header("Content-Length")
        assert length is not None, "neither chunked nor a Content-Length"
        assert len(rest) == int(length)
        answer.body = rest
    return answer


async def exchange(
    server: TestClient | tuple[str, int],  # type: ignore[type-arg]
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    version: str = "HTTP/1.1",
    body: bytes = b"",
) -> RawAnswer:
    """One request over a fresh connection (closed by the server after the answer)."""
    host, port = server if isinstance(server, tuple) else (server.host, server.port)
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"{method} {path} {version}", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    return parse_answer(raw)


# --- the app's answers --------------------------------------------------------------------------

TRAILING = (("x-trail", "t1"), ("x-raw-bin", b"\x00\xff"))
WITH_TRAILERS = UnaryResult(
    pb.Book(name="b"), header_metadata=(("x-head", "h"),), trailing_metadata=TRAILING
)


async def client_for(
    aiohttp_client: ClientFactory, options: GatewayOptions, outcome: object
) -> TestClient:  # type: ignore[type-arg]
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: outcome})  # type: ignore[dict-item]
    return await aiohttp_client(create_gateway_app(fixture_table(), invoker, options))


async def test_kfp_sends_trailing_metadata_as_http_trailers(aiohttp_client: ClientFactory) -> None:
    client = await client_for(aiohttp_client, KFP, WITH_TRAILERS)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b")

    assert answer.status == 200
    assert answer.header("Content-Length") is None
    assert answer.header("Trailer") == "Grpc-Trailer-X-Trail, Grpc-Trailer-X-Raw-Bin"
    assert answer.header("Grpc-Metadata-X-Head") == "h"
    assert answer.header("Grpc-Trailer-X-Trail") is None  # not a header any more
    assert json.loads(answer.body) == {"name": "b"}
    assert answer.trailers == [("Grpc-Trailer-X-Trail", "t1"), ("Grpc-Trailer-X-Raw-Bin", "AP8=")]


@pytest.mark.parametrize(("te", "sent"), [(None, False), ("trailers", True)])
async def test_generic_sends_trailers_only_when_asked(
    aiohttp_client: ClientFactory, te: str | None, sent: bool
) -> None:
    client = await client_for(aiohttp_client, GENERIC, WITH_TRAILERS)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b", {"TE": te} if te else {})

    assert answer.status == 200
    assert [name for name, _ in answer.trailers] == (
        ["Grpc-Trailer-X-Trail", "Grpc-Trailer-X-Raw-Bin"] if sent else []
    )
    assert (answer.header("Content-Length") is None) is sent  # chunked only with trailers
    assert answer.header("Grpc-Trailer-X-Trail") is None


async def test_without_trailing_metadata_content_length_stays(
    aiohttp_client: ClientFactory,
) -> None:
    result = UnaryResult(pb.Book(name="b"), header_metadata=(("x-head", "h"),))
    client = await client_for(aiohttp_client, KFP, result)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b", {"TE": "trailers"})

    assert answer.header("Content-Length") == str(len(answer.body))
    assert answer.header("Transfer-Encoding") is None
    assert answer.header("Trailer") is None


async def test_http_1_0_gets_the_trailers_as_headers(aiohttp_client: ClientFactory) -> None:
    client = await client_for(aiohttp_client, KFP, WITH_TRAILERS)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b", version="HTTP/1.0")

    assert answer.status == 200
    assert answer.header("Grpc-Trailer-X-Trail") == "t1"
    assert answer.header("Trailer") is None


async def test_head_gets_the_trailers_as_headers(aiohttp_client: ClientFactory) -> None:
    table = fixture_table()
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Echo/EchoAny": WITH_TRAILERS})
    client = await aiohttp_client(create_gateway_app(table, invoker, KFP))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"HEAD /v1/any-method HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()

    head = raw.decode("latin-1")
    assert head.startswith("HTTP/1.1 200")
    assert "Grpc-Trailer-X-Trail: t1\r\n" in head
    assert "Transfer-Encoding" not in head
    assert head.endswith("\r\n\r\n")  # no body at all


async def test_a_large_answer_with_trailers_is_gzipped_then_chunked(
    aiohttp_client: ClientFactory,
) -> None:
    large = UnaryResult(pb.Book(name="b", title="x" * 5000), trailing_metadata=TRAILING)
    client = await client_for(aiohttp_client, KFP, large)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b", {"Accept-Encoding": "gzip"})
    plain = await exchange(client, "GET", "/v1/shelves/s/books/b")

    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Vary") == "Accept-Encoding"
    assert len(answer.body) < 1000
    assert json.loads(gzip.decompress(answer.body))["title"] == "x" * 5000
    assert answer.trailers == plain.trailers != []
    assert plain.header("Content-Encoding") is None
    assert plain.header("Vary") == "Accept-Encoding"


async def test_error_carries_the_calls_metadata(aiohttp_client: ClientFactory) -> None:
    error = RpcStatusError(
        RpcStatus(grpc.StatusCode.NOT_FOUND, "no such book"),
        header_metadata=(("x-head", "h"),),
        trailing_metadata=(("x-trail", "t1"),),
    )
    client = await client_for(aiohttp_client, KFP, error)

    answer = await exchange(client, "GET", "/v1/shelves/s/books/b")

    assert answer.status == 404
    assert answer.header("Grpc-Metadata-X-Head") == "h"
    assert answer.trailers == [("Grpc-Trailer-X-Trail", "t1")]
    assert json.loads(answer.body)["message"] == "no such book"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_reads_the_trailers(aiohttp_client: ClientFactory) -> None:
    client = await client_for(aiohttp_client, KFP, WITH_TRAILERS)
    url = f"http://{client.host}:{client.port}/v1/shelves/s/books/b"

    # curl, a client other than ours, decodes the chunked body and prints the trailer section.
    done = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "-i", "--max-time", "10", url],
        capture_output=True,
        check=True,
    )

    out = done.stdout.decode("latin-1")
    assert "transfer-encoding: chunked" in out.lower()
    body_and_trailers = out.partition("\r\n\r\n")[2]
    body, _, trailers = body_and_trailers.partition("Grpc-Trailer-X-Trail: t1")
    assert json.loads(body) == {"name": "b"}  # curl took the chunk framing off
    assert "Grpc-Trailer-X-Raw-Bin: AP8=" in trailers


async def test_aiohttp_reads_the_framed_body(aiohttp_client: ClientFactory) -> None:
    client = await client_for(aiohttp_client, KFP, WITH_TRAILERS)
    resp = await client.get("/v1/shelves/s/books/b")
    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert await resp.json() == {"name": "b"}


async def test_the_next_answer_on_the_connection_starts_right_after_the_trailers(
    aiohttp_client: ClientFactory,
) -> None:
    client = await client_for(aiohttp_client, KFP, WITH_TRAILERS)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    get = b"GET /v1/shelves/s/books/b HTTP/1.1\r\nHost: x\r\n"
    writer.write(get + b"\r\n" + get + b"Connection: close\r\n\r\n")  # pipelined
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()

    first_head, _, rest = raw.partition(b"\r\n\r\n")
    body, trailers, second = split_chunked(rest)
    assert first_head.startswith(b"HTTP/1.1 200")
    assert (json.loads(body), trailers) == ({"name": "b"}, parse_answer(second).trailers)
    assert parse_answer(second).status == 200
