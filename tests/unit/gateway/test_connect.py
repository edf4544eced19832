"""Connect: content types, timeouts, errors, end-of-stream (pure), and the door in the app."""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable

import grpc
import pytest
from aiohttp.test_utils import TestClient
from google.protobuf import any_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway import connect, envelope
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.invoker import UnaryResult
from taskgate.gateway.options import GatewayOptions
from taskgate.rpc import RpcStatus, RpcStatusError
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
TABLE = fixture_table()
GET_BOOK = "/tgtest.Library/GetBook"
STREAM_BOOKS = "/tgtest.Library/StreamBooks"
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}


# --- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "parsed"),
    [
        ("application/json", ("json", False)),
        ("application/json; charset=utf-8", ("json", False)),
        ("application/proto", ("proto", False)),
        ("application/connect+json", ("json", True)),
        ("application/connect+proto", ("proto", True)),
        ("application/json; charset=latin1", None),
        ("application/proto; charset=utf-8", None),
        ("application/connect+thrift", None),
        ("application/grpc", None),
        ("application/x-ndjson", None),
        ("text/json", None),
    ],
)
def test_content_types(content_type: str, parsed: tuple[str, bool] | None) -> None:
    found = connect.parse_content_type(content_type)
    assert (None if found is None else (found.codec, found.streaming)) == parsed


@pytest.mark.parametrize(
    ("text", "seconds"), [(None, None), ("1500", 1.5), ("0", 0.0), ("9999999999", 9999999.999)]
)
def test_timeouts(text: str | None, seconds: float | None) -> None:
    assert connect.parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "1.5", "12345678901", "1s"])
def test_bad_timeouts(text: str) -> None:
    with pytest.raises(TranscodeError, match="Connect-Timeout-Ms"):
        connect.parse_timeout(text)


def test_protocol_version() -> None:
    connect.check_protocol_version(None)
    connect.check_protocol_version("1")
    with pytest.raises(TranscodeError, match="Connect-Protocol-Version"):
        connect.check_protocol_version("2")


def test_every_code_has_a_name_and_a_status() -> None:
    codes = [c for c in grpc.StatusCode if c != grpc.StatusCode.OK]
    assert set(connect.CODE_NAMES) == set(codes) == set(connect.HTTP_STATUS_BY_CODE)
    assert connect.CODE_NAMES[grpc.StatusCode.CANCELLED] == "canceled"


def test_http_statuses_are_connects() -> None:
    """The Connect protocol's "Error Codes" table, by name (shared with REST's T39 table)."""
    connect_table = {
        "canceled": 499,
        "unknown": 500,
        "invalid_argument": 400,
        "deadline_exceeded": 504,
        "not_found": 404,
        "already_exists": 409,
        "permission_denied": 403,
        "resource_exhausted": 429,
        "failed_precondition": 400,
        "aborted": 409,
        "out_of_range": 400,
        "unimplemented": 501,
        "internal": 500,
        "unavailable": 503,
        "data_loss": 500,
        "unauthenticated": 401,
    }
    by_name = {connect.CODE_NAMES[c]: s for c, s in connect.HTTP_STATUS_BY_CODE.items()}
    assert by_name == connect_table


def test_error_json_has_typed_details_with_debug() -> None:
    known = any_pb2.Any()
    known.Pack(error_details_pb2.ErrorInfo(reason="R", domain="d"))
    unknown = any_pb2.Any(type_url="type.googleapis.com/nowhere.Unknown", value=b"\x08\x2a")
    status = RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "bad", (known, unknown))
    assert connect.error_to_dict(status, None) == {
        "code": "invalid_argument",
        "message": "bad",
        "details": [
            {
                "type": "google.rpc.ErrorInfo",
                "value": envelope.header_value(known.value),
                "debug": {"reason": "R", "domain": "d"},
            },
            {"type": "nowhere.Unknown", "value": "CCo"},
        ],
    }


def test_end_stream_message() -> None:
    ok = connect.end_stream_message(None, (), None)
    assert ok == b"{}"
    failed = RpcStatus(grpc.StatusCode.ABORTED, "stop")
    trailers: list[tuple[str, str | bytes]] = [("x-t", "1"), ("x-t", "2"), ("x-b-bin", b"\x01")]
    assert json.loads(connect.end_stream_message(failed, trailers, None)) == {
        "error": {"code": "aborted", "message": "stop"},
        "metadata": {"x-t": ["1", "2"], "x-b-bin": ["AQ"]},
    }


def test_json_codec_is_proto3_json_with_both_names_in() -> None:
    message = connect.decode_message(
        "json", b'{"name":"n","pageCount":3,"page_count":4,"nope":1}', pb.Book(), None
    )
    assert (message.name, message.page_count) == ("n", 4)
    assert connect.encode_message("json", pb.Book(page_count=3), None) == b'{"pageCount":"3"}'
    assert connect.decode_message("json", b"", pb.Book(), None) == pb.Book()
    with pytest.raises(TranscodeError, match=r"not a valid json tgtest\.Book"):
        connect.decode_message("json", b'{"pageCount":"x"}', pb.Book(), None)
    with pytest.raises(TranscodeError, match=r"not a valid proto tgtest\.Book"):
        connect.decode_message("proto", b"\xff", pb.Book(), None)


# --- the door in the app ------------------------------------------------------------------


async def client_for(
    aiohttp_client: ClientFactory, invoker: FakeInvoker, **options: object
) -> TestClient:  # type: ignore[type-arg]
    app = create_gateway_app(TABLE, invoker, GatewayOptions.generic(**options))
    return await aiohttp_client(app)


async def test_unary_json(aiohttp_client: ClientFactory) -> None:
    answer = pb.Book(name="b", page_count=2)
    invoker = FakeInvoker(
        unary_outcomes={GET_BOOK: UnaryResult(answer, (("x-head", "h"),), (("x-trail", "t"),))}
    )
    client = await client_for(aiohttp_client, invoker)
    headers = {**JSON, "Connect-Timeout-Ms": "250", "Authorization": "Bearer x"}
    response = await client.post(GET_BOOK, data=b'{"name":"b"}', headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert (response.headers["x-head"], response.headers["trailer-x-trail"]) == ("h", "t")
    assert await response.json() == {"name": "b", "pageCount": "2"}
    (call,) = invoker.calls
    assert call.request == pb.GetBookRequest(name="b")
    assert call.options.timeout == pytest.approx(0.25)
    assert ("authorization", "Bearer x") in call.options.metadata


async def test_unary_proto(aiohttp_client: ClientFactory) -> None:
    """(A gzip body is tested in tests/integration: the test server inflates bodies itself.)"""
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: pb.Book(name="p")})
    client = await client_for(aiohttp_client, invoker)
    body = pb.GetBookRequest(name="p").SerializeToString()
    response = await client.post(GET_BOOK, data=body, headers={"Content-Type": "application/proto"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/proto"
    assert pb.Book.FromString(await response.read()) == pb.Book(name="p")


@pytest.mark.parametrize(
    ("outcome", "http_status", "code"),
    [
        (RpcStatusError.of(grpc.StatusCode.NOT_FOUND, "gone"), 404, "not_found"),
        (RpcStatusError.of(grpc.StatusCode.FAILED_PRECONDITION, "no"), 400, "failed_precondition"),
        (RpcStatusError.of(grpc.StatusCode.UNAVAILABLE, "down"), 503, "unavailable"),
        (RuntimeError("boom"), 500, "internal"),
    ],
)
async def test_unary_errors(
    aiohttp_client: ClientFactory, outcome: BaseException, http_status: int, code: str
) -> None:
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: outcome})
    client = await client_for(aiohttp_client, invoker)
    response = await client.post(GET_BOOK, data=b"{}", headers=JSON)
    assert response.status == http_status
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body["code"] == code
    assert "boom" not in json.dumps(body)


@pytest.mark.parametrize(
    ("body", "headers", "http_status", "text"),
    [
        (b"{", {}, 400, "not a valid json"),
        (b"{}", {"Connect-Timeout-Ms": "soon"}, 400, "Connect-Timeout-Ms"),
        (b"{}", {"Connect-Protocol-Version": "7"}, 400, "Connect-Protocol-Version"),
        (b"x" * 300, {}, 413, "larger than 100 bytes"),
    ],
)
async def test_unary_bad_requests(
    aiohttp_client: ClientFactory, body: bytes, headers: dict[str, str], http_status: int, text: str
) -> None:
    invoker = FakeInvoker()
    client = await client_for(aiohttp_client, invoker, max_body_bytes=100)
    response = await client.post(GET_BOOK, data=body, headers={**JSON, **headers})
    assert response.status == (429 if http_status == 413 else http_status)
    assert text in (await response.json())["message"]
    assert invoker.calls == []


async def test_streaming_content_type_on_a_unary_method_is_415(
    aiohttp_client: ClientFactory,
) -> None:
    client = await client_for(aiohttp_client, FakeInvoker())
    response = await client.post(
        GET_BOOK, data=b"", headers={"Content-Type": "application/connect+json"}
    )
    assert response.status == 415
    assert response.headers["Accept-Post"] == "application/json, application/proto"


def stream_frames(body: bytes) -> tuple[list[bytes], dict[str, object]]:
    frames = envelope.split_frames(body, 1 << 20)
    assert frames[-1].flags == connect.END_STREAM_FLAG
    assert all(f.flags == 0 for f in frames[:-1])
    return [f.payload for f in frames[:-1]], json.loads(frames[-1].payload)


async def test_server_stream_json_with_late_error(aiohttp_client: ClientFactory) -> None:
    error = RpcStatusError.of(grpc.StatusCode.ABORTED, "stopped")
    invoker = FakeInvoker(stream_items={STREAM_BOOKS: [pb.Book(page_count=1), error]})
    client = await client_for(aiohttp_client, invoker)
    request = envelope.frame(0, b'{"count":2}')
    response = await client.post(
        STREAM_BOOKS, data=request, headers={"Content-Type": "application/connect+json"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/connect+json"
    messages, end = stream_frames(await response.read())
    assert [json.loads(m) for m in messages] == [{"pageCount": "1"}]
    assert end == {"error": {"code": "aborted", "message": "stopped"}}
    assert invoker.calls[0].request == pb.StreamBooksRequest(count=2)


async def test_server_stream_proto_gzip_request(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(stream_items={STREAM_BOOKS: [pb.Book(name="a"), pb.Book(name="b")]})
    client = await client_for(aiohttp_client, invoker)
    payload = gzip.compress(pb.StreamBooksRequest(shelf="s").SerializeToString())
    response = await client.post(
        STREAM_BOOKS,
        data=envelope.frame(1, payload),
        headers={"Content-Type": "application/connect+proto", "Connect-Content-Encoding": "gzip"},
    )
    messages, end = stream_frames(await response.read())
    assert [pb.Book.FromString(m).name for m in messages] == ["a", "b"]
    assert end == {}
    assert invoker.calls[0].request == pb.StreamBooksRequest(shelf="s")


async def test_server_stream_bad_request_is_in_the_end_message(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = FakeInvoker()
    client = await client_for(aiohttp_client, invoker)
    response = await client.post(
        STREAM_BOOKS, data=b"\x00\x00", headers={"Content-Type": "application/connect+json"}
    )
    assert response.status == 200
    messages, end = stream_frames(await response.read())
    assert messages == []
    assert end["error"] == {
        "code": "invalid_argument",
        "message": "the request body ends inside a message header",
    }
    assert invoker.calls == []
