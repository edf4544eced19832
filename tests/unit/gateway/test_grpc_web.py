"""gRPC-Web: envelopes, text mode, trailers (pure), and the door in the app with a fake invoker."""

from __future__ import annotations

import base64
import gzip
import struct
from collections.abc import Awaitable, Callable

import grpc
import pytest
from aiohttp.test_utils import TestClient
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate import metrics
from taskgate.gateway import envelope, grpc_web
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.invoker import UnaryResult
from taskgate.gateway.metadata import binary_value
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.rpc_web_door import classify
from taskgate.rpc import RpcStatus, RpcStatusError
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
TABLE = fixture_table()
GET_BOOK = "/tgtest.Library/GetBook"
STREAM_BOOKS = "/tgtest.Library/StreamBooks"
WEB = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}


# --- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/grpc-web", False),
        ("application/grpc-web+proto", False),
        ("Application/GRPC-Web+proto; charset=x", False),
        ("application/grpc-web-text", True),
        ("application/grpc-web-text+proto", True),
        ("application/grpc-web+json", None),
        ("application/grpc", None),
        ("application/json", None),
        ("", None),
    ],
)
def test_content_types(content_type: str, text: bool | None) -> None:
    parsed = grpc_web.parse_content_type(content_type)
    assert (None if parsed is None else parsed.text) == text


def test_frames_round_trip_and_are_checked() -> None:
    body = envelope.frame(0, b"abc") + envelope.frame(1, b"") + envelope.frame(0x80, b"x")
    assert body[:5] == b"\x00\x00\x00\x00\x03"
    assert envelope.split_frames(body, 10) == [
        envelope.Envelope(0, b"abc"),
        envelope.Envelope(1, b""),
        envelope.Envelope(0x80, b"x"),
    ]
    with pytest.raises(TranscodeError, match="inside a message header"):
        envelope.split_frames(b"\x00\x00", 10)
    with pytest.raises(TranscodeError, match="inside a message"):
        envelope.split_frames(envelope.frame(0, b"abc")[:-1], 10)
    with pytest.raises(TranscodeError, match="larger than 10") as raised:
        envelope.split_frames(struct.pack(">BI", 0, 2**31), 10)  # nothing allocated
    assert raised.value.status.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_gunzip_is_bounded() -> None:
    assert envelope.gunzip(gzip.compress(b"hello"), 5) == b"hello"
    with pytest.raises(TranscodeError, match="larger than 4"):
        envelope.gunzip(gzip.compress(b"hello"), 4)
    with pytest.raises(TranscodeError, match="not valid gzip"):
        envelope.gunzip(b"not gzip", 100)


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b"", b""),
        (base64.b64encode(b"hello world"), b"hello world"),
        # a browser streaming its upload: padded chunks one after the other
        (base64.b64encode(b"ab") + base64.b64encode(b"c") + base64.b64encode(b"def"), b"abcdef"),
        (b"aGVs\r\nbG8=", b"hello"),
    ],
)
def test_text_bodies(body: bytes, decoded: bytes) -> None:
    assert grpc_web.decode_text_body(body) == decoded


@pytest.mark.parametrize("body", [b"abc", b"a===", b"ab!d", b"YQ==Y"])
def test_bad_text_bodies(body: bytes) -> None:
    with pytest.raises(TranscodeError, match="not valid base64"):
        grpc_web.decode_text_body(body)


@pytest.mark.parametrize(
    ("message", "encoded"),
    [("plain text", "plain text"), ("100% é\n", "100%25 %C3%A9%0A"), ("", "")],
)
def test_grpc_message_is_percent_encoded(message: str, encoded: str) -> None:
    assert grpc_web.percent_encode(message) == encoded


def test_trailer_frame_carries_status_details_and_metadata() -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="R"))
    status = RpcStatus(grpc.StatusCode.NOT_FOUND, "no such book: é", (detail,))
    raw = grpc_web.trailer_frame(status, [("x-t", "v"), ("x-b-bin", b"\x00\xff"), ("bad", "\n")])
    (trailer,) = envelope.split_frames(raw, 1000)
    assert trailer.flags == 0x80
    lines = trailer.payload.decode().split("\r\n")
    assert lines[:2] == ["grpc-status:5", "grpc-message:no such book: %C3%A9"]
    key, _, value = lines[2].partition(":")
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(binary_value(key, value))
    assert (decoded.code, decoded.message, list(decoded.details)) == (5, status.message, [detail])
    assert lines[3:] == ["x-t:v", "x-b-bin:AP8", ""]


def test_ok_trailer_is_just_the_status() -> None:
    assert grpc_web.trailer_frame(RpcStatus(grpc.StatusCode.OK, "")) == envelope.frame(
        0x80, b"grpc-status:0\r\n"
    )


def test_request_headers_become_metadata() -> None:
    headers = [
        ("Authorization", "Bearer t"),
        ("Kubeflow-Userid", "alice"),
        ("X-Custom", "v"),
        ("X-Blob-Bin", "AP8"),
        ("Content-Type", "application/grpc-web"),
        ("X-Grpc-Web", "1"),
        ("Grpc-Timeout", "1S"),
        ("Connect-Timeout-Ms", "5"),
        ("Cookie", "c=1"),
        ("Sec-Fetch-Mode", "cors"),
        ("Traceparent", "00-x"),
        ("X-Bad Key", "v"),
        ("X-Utf8", "é"),
    ]
    assert envelope.metadata_from_headers(headers) == [
        ("authorization", "Bearer t"),
        ("kubeflow-userid", "alice"),
        ("x-custom", "v"),
        ("x-blob-bin", b"\x00\xff"),
    ]
    with pytest.raises(TranscodeError, match="X-Blob-Bin"):
        envelope.metadata_from_headers([("X-Blob-Bin", "!!")])


def test_classify_picks_only_protocol_posts_to_known_methods() -> None:
    methods = TABLE.methods
    found = classify("POST", GET_BOOK, "application/grpc-web-text", methods)
    assert found is not None
    assert found.door == metrics.GRPC_WEB
    assert found.full_method == GET_BOOK
    connect = classify("POST", GET_BOOK, "application/json", methods)
    assert connect is not None
    assert connect.door == metrics.CONNECT
    assert classify("GET", GET_BOOK, "application/grpc-web", methods) is None
    assert classify("POST", "/tgtest.Library/Nope", "application/grpc-web", methods) is None
    assert classify("POST", GET_BOOK, "text/plain", methods) is None


# --- the door in the app ------------------------------------------------------------------


def parse_response(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """(messages, trailers) of a binary gRPC-Web response body."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    for frame in envelope.split_frames(body, 1 << 20):
        if frame.flags & 0x80:
            for line in frame.payload.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key] = value
        else:
            messages.append(frame.payload)
    return messages, trailers


async def client_for(
    aiohttp_client: ClientFactory, invoker: FakeInvoker, **options: object
) -> TestClient:  # type: ignore[type-arg]
    app = create_gateway_app(TABLE, invoker, GatewayOptions.generic(**options))
    return await aiohttp_client(app)


def request_body(message: pb.GetBookRequest | pb.StreamBooksRequest) -> bytes:
    return envelope.frame(0, message.SerializeToString())


async def test_unary_call_with_metadata_and_deadline(aiohttp_client: ClientFactory) -> None:
    answer = pb.Book(name="shelves/s/books/b", title="T")
    invoker = FakeInvoker(
        unary_outcomes={
            GET_BOOK: UnaryResult(answer, (("x-head", "h"),), (("x-trail", "t"),)),
        }
    )
    client = await client_for(aiohttp_client, invoker)
    headers = {**WEB, "Grpc-Timeout": "1500m", "X-Custom": "c", "X-Request-Id": "rid-1"}
    response = await client.post(
        GET_BOOK, data=request_body(pb.GetBookRequest(name="shelves/s/books/b")), headers=headers
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/grpc-web+proto"
    assert response.headers["x-head"] == "h"
    messages, trailers = parse_response(await response.read())
    assert [pb.Book.FromString(m) for m in messages] == [answer]
    assert trailers == {"grpc-status": "0", "x-trail": "t"}
    (call,) = invoker.calls
    assert call.method == GET_BOOK
    assert call.request == pb.GetBookRequest(name="shelves/s/books/b")
    assert call.options.timeout == pytest.approx(1.5)
    assert ("x-custom", "c") in call.options.metadata
    assert ("x-request-id", "rid-1") in call.options.metadata


async def test_text_mode_both_ways(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: pb.Book(name="b")})
    client = await client_for(aiohttp_client, invoker)
    raw = request_body(pb.GetBookRequest(name="b"))
    body = base64.b64encode(raw[:4]) + base64.b64encode(raw[4:])  # two padded chunks
    response = await client.post(
        GET_BOOK, data=body, headers={"Content-Type": "application/grpc-web-text"}
    )
    assert response.headers["Content-Type"] == "application/grpc-web-text+proto"
    text = await response.read()
    assert b"=" not in text.rstrip(b"=")  # one unbroken base64 string
    messages, trailers = parse_response(base64.b64decode(text))
    assert [pb.Book.FromString(m) for m in messages] == [pb.Book(name="b")]
    assert trailers["grpc-status"] == "0"


async def test_error_goes_in_the_trailer_frame_with_details(aiohttp_client: ClientFactory) -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="GONE"))
    error = RpcStatusError.of(grpc.StatusCode.NOT_FOUND, "no book", (detail,))
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: error})
    client = await client_for(aiohttp_client, invoker)
    response = await client.post(GET_BOOK, data=request_body(pb.GetBookRequest()), headers=WEB)
    assert response.status == 200
    messages, trailers = parse_response(await response.read())
    assert messages == []
    assert (trailers["grpc-status"], trailers["grpc-message"]) == ("5", "no book")
    details = status_pb2.Status.FromString(binary_value("d", trailers["grpc-status-details-bin"]))
    assert list(details.details) == [detail]


@pytest.mark.parametrize(
    ("body", "headers", "code", "text"),
    [
        (b"\x00\x00\x00\x00\x09abc", {}, "3", "ends inside a message"),
        (b"\x00\x00\x00\x00\x02\x08", {}, "3", "ends inside a message"),
        (b"", {}, "3", "exactly one request message"),
        (envelope.frame(0, b"\xff\xff") * 1, {}, "3", "not a valid tgtest.GetBookRequest"),
        (envelope.frame(0, b"") * 2, {}, "3", "exactly one request message"),
        (envelope.frame(1, b"x"), {"Grpc-Encoding": "snappy"}, "12", "unsupported message"),
        (envelope.frame(1, b"x"), {"Grpc-Encoding": "gzip"}, "3", "not valid gzip"),
        (envelope.frame(0, b""), {"Grpc-Timeout": "soon"}, "3", "Grpc-Timeout"),
        (b"\x00" * 300, {}, "8", "request body is larger than"),
    ],
)
async def test_bad_requests_are_answered_in_the_trailer(
    aiohttp_client: ClientFactory, body: bytes, headers: dict[str, str], code: str, text: str
) -> None:
    invoker = FakeInvoker()
    client = await client_for(aiohttp_client, invoker, max_body_bytes=100)
    response = await client.post(GET_BOOK, data=body, headers={**WEB, **headers})
    assert response.status == 200
    _, trailers = parse_response(await response.read())
    assert trailers["grpc-status"] == code
    assert text in trailers["grpc-message"]
    assert invoker.calls == []


async def test_gzip_request_message(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker()
    client = await client_for(aiohttp_client, invoker)
    compressed = gzip.compress(pb.GetBookRequest(name="zipped").SerializeToString())
    response = await client.post(
        GET_BOOK, data=envelope.frame(1, compressed), headers={**WEB, "Grpc-Encoding": "gzip"}
    )
    _, trailers = parse_response(await response.read())
    assert trailers["grpc-status"] == "0"
    assert invoker.calls[0].request == pb.GetBookRequest(name="zipped")


async def test_server_stream_then_error(aiohttp_client: ClientFactory) -> None:
    books = [pb.Book(name="a"), pb.Book(name="b")]
    error = RpcStatusError.of(grpc.StatusCode.ABORTED, "stopped")
    invoker = FakeInvoker(stream_items={STREAM_BOOKS: [*books, error]})
    client = await client_for(aiohttp_client, invoker)
    response = await client.post(
        STREAM_BOOKS, data=request_body(pb.StreamBooksRequest(count=2)), headers=WEB
    )
    messages, trailers = parse_response(await response.read())
    assert [pb.Book.FromString(m) for m in messages] == books
    assert (trailers["grpc-status"], trailers["grpc-message"]) == ("10", "stopped")
    assert invoker.calls[0].options.timeout is None  # a stream has no default deadline


async def test_client_streaming_method_is_unimplemented(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker()
    client = await client_for(aiohttp_client, invoker)
    bidi = next(p for p, m in TABLE.methods.items() if m.client_streaming)
    response = await client.post(bidi, data=envelope.frame(0, b""), headers=WEB)
    _, trailers = parse_response(await response.read())
    assert trailers["grpc-status"] == "12"
    assert invoker.calls == []


async def test_large_response_is_not_gzipped(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={GET_BOOK: pb.Book(title="x" * 5000)})
    client = await client_for(aiohttp_client, invoker)
    response = await client.post(
        GET_BOOK,
        data=request_body(pb.GetBookRequest()),
        headers={**WEB, "Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert "Content-Encoding" not in response.headers
    messages, _ = parse_response(await response.read())
    assert pb.Book.FromString(messages[0]).title == "x" * 5000


async def test_rest_on_the_same_path_shape_is_untouched(aiohttp_client: ClientFactory) -> None:
    """A POST to a method's path without a protocol Content-Type is REST's (here: no route)."""
    client = await client_for(aiohttp_client, FakeInvoker())
    response = await client.post(GET_BOOK, data=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status == 404
