"""The aiohttp app end to end over loopback, with a FakeInvoker behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestClient
from google.api import http_pb2, httpbody_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import any_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from yarl import URL

from taskgate.gateway.app import create_gateway_app, replace_routes
from taskgate.gateway.invoker import UnaryResult
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.rpc import RpcStatus, RpcStatusError
from tests.protos import transcoding_test_pb2 as pb
from tests.unit.gateway.descriptors import (
    FIXTURE,
    copy_into_new_pool,
    fixture_table,
    service_with_rules,
)
from tests.unit.gateway.fakes import FakeInvoker

#: aiohttp sends bytes as application/octet-stream, which JSON routes refuse (decision D16).
JSON = {"Content-Type": "application/json"}

ClientFactory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
KFP = GatewayOptions.kfp()
GENERIC = GatewayOptions.generic()
TABLE = fixture_table()


async def make_client(
    aiohttp_client: ClientFactory,
    invoker: FakeInvoker,
    options: GatewayOptions = KFP,
    health: Callable[[], Awaitable[bool]] | None = None,
) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_gateway_app(TABLE, invoker, options, health=health))


def book() -> pb.Book:
    result = pb.Book(name="shelves/s/books/b", title="T", page_count=7, color=pb.RED)
    result.publish_time.FromJsonString("2016-05-10T10:19:13Z")
    return result


async def test_get_builds_the_request_and_renders_kfp_json(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/GetBook": book()})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/shelves/s/books/b?with_labels=true&unknown=1")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.read() == (
        b'{"name":"shelves/s/books/b","title":"T","page_count":"7","color":"RED",'
        b'"publish_time":"2016-05-10T10:19:13Z"}'
    )
    [call] = invoker.calls
    assert call.method == "/tgtest.Library/GetBook"
    assert call.request == pb.GetBookRequest(name="shelves/s/books/b", with_labels=True)


async def test_generic_options_use_json_names(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/GetBook": book()})
    client = await make_client(aiohttp_client, invoker, GENERIC)
    resp = await client.get("/v1/shelves/s/books/b")
    assert json.loads(await resp.read()) == {
        "name": "shelves/s/books/b",
        "title": "T",
        "pageCount": "7",
        "color": "RED",
        "publishTime": "2016-05-10T10:19:13Z",
    }


async def test_post_body_field_and_path(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/CreateBook": pb.Book()})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.post(
        "/v1/shelves/s1/books?book_id=b9",
        data=b'{"title":"x","pageCount":"3","zzz":1}',
        headers=JSON,
    )
    assert resp.status == 200
    assert await resp.read() == b"{}"
    assert invoker.calls[0].request == pb.CreateBookRequest(
        parent="shelves/s1", book_id="b9", book=pb.Book(title="x", page_count=3)
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        (
            "POST",
            "/v1/shelves/s/books",
            b'{"title": 5}',
            400,
            {"code": 3, "message": 'invalid value for field "title": expected a string'},
        ),
        (
            "POST",
            "/v1/shelves/s/books",
            b"{not json",
            400,
            {"code": 3, "message": "the request body is not valid JSON (line 1, column 2)"},
        ),
        (
            "GET",
            "/v1/books?page_size=abc",
            b"",
            400,
            {
                "code": 3,
                "message": 'invalid value "abc" for query parameter "page_size": '
                "expected a 32-bit integer",
            },
        ),
        (
            "GET",
            "/v1/echo/x?color=BLUE",
            b"",
            400,
            {
                "code": 3,
                "message": 'invalid value "BLUE" for query parameter "color": '
                "expected one of COLOR_UNSPECIFIED, RED, GREEN",
            },
        ),
        (
            "GET",
            "/v1/echo/%zz",
            b"",
            400,
            {"code": 3, "message": 'invalid path variable "f_string": malformed percent-encoding'},
        ),
        ("GET", "/v2/nothing", b"", 404, {"code": 5, "message": "Not Found"}),
        ("GET", "/v1/any-method/x", b"", 404, {"code": 5, "message": "Not Found"}),
    ],
)
async def test_bad_input_is_a_kfp_error_and_never_reaches_the_invoker(
    aiohttp_client: ClientFactory,
    method: str,
    path: str,
    body: bytes,
    status: int,
    expected: dict[str, object],
) -> None:
    invoker = FakeInvoker()
    client = await make_client(aiohttp_client, invoker)
    resp = await client.request(method, URL(path, encoded=True), data=body, headers=JSON)
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(await resp.read()) == {"error": expected["message"], **expected}
    assert invoker.calls == []


async def test_method_not_allowed_has_allow_header(aiohttp_client: ClientFactory) -> None:
    client = await make_client(aiohttp_client, FakeInvoker())
    resp = await client.put("/v1/shelves/s/books")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, POST"
    assert await resp.read() == (
        b'{"error":"Method Not Allowed","code":12,"message":"Method Not Allowed"}'
    )


async def test_head_is_not_served_unless_a_rule_names_it(aiohttp_client: ClientFactory) -> None:
    client = await make_client(aiohttp_client, FakeInvoker())
    resp = await client.head("/v1/shelves/s/books")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET, POST"


async def test_body_over_the_limit_is_413(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker()
    options = GatewayOptions.kfp(max_body_bytes=16)
    client = await make_client(aiohttp_client, invoker, options)
    resp = await client.post("/v1/echo", data=b'{"fString":"' + b"x" * 32 + b'"}', headers=JSON)
    assert resp.status == 413
    assert json.loads(await resp.read()) == {
        "error": "the request body is larger than 16 bytes",
        "code": 8,
        "message": "the request body is larger than 16 bytes",
    }
    assert invoker.calls == []


async def test_status_style_error_with_details_and_unknown_any(
    aiohttp_client: ClientFactory,
) -> None:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="R", domain="d"))
    unknown = any_pb2.Any(type_url="type.googleapis.com/x.Nope", value=b"\x08\x01")
    error = RpcStatusError(RpcStatus(grpc.StatusCode.NOT_FOUND, "no book", (info, unknown)))
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/GetBook": error})
    client = await make_client(aiohttp_client, invoker, GENERIC)
    resp = await client.get("/v1/shelves/s/books/b")
    assert resp.status == 404
    assert await resp.read() == (
        b'{"code":5,"message":"no book","details":['
        b'{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"R","domain":"d"},'
        b'{"@type":"type.googleapis.com/x.Nope","value":"CAE="}]}'
    )


async def test_unexpected_exception_is_internal_without_python_text(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Echo/Echo": ZeroDivisionError("secret")})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/echo/x")
    assert resp.status == 500
    assert await resp.read() == b'{"error":"Internal error","code":13,"message":"Internal error"}'
    assert caplog.text.count("unexpected error") == 1


async def test_deadline_exceeded_is_504_and_timeout_is_forwarded(
    aiohttp_client: ClientFactory,
) -> None:
    error = RpcStatusError.of(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Echo/Echo": error})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/echo/x", headers={"Grpc-Timeout": "100m"})
    assert resp.status == 504
    assert invoker.calls[0].options.timeout == pytest.approx(0.1)


async def test_malformed_grpc_timeout_is_400(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker()
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/echo/x", headers={"Grpc-Timeout": "soon"})
    assert resp.status == 400
    assert "Grpc-Timeout" in json.loads(await resp.read())["message"]
    assert invoker.calls == []


async def test_headers_become_metadata_and_back(aiohttp_client: ClientFactory) -> None:
    result = UnaryResult(pb.Scalars(), header_metadata=[("x-trace", "t1"), ("blob-bin", b"\x01")])
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Echo/Echo": result})
    client = await make_client(aiohttp_client, invoker)
    headers = {
        "Kubeflow-Userid": "alice@example.com",
        "Authorization": "Bearer t",
        "Grpc-Metadata-X-Custom": "v",
        "Grpc-Metadata-Data-Bin": "AAE=",
        "X-Other": "dropped",
    }
    resp = await client.get("/v1/echo/x", headers=headers)
    assert resp.status == 200
    assert resp.headers["Grpc-Metadata-x-trace"] == "t1"
    assert resp.headers["Grpc-Metadata-blob-bin"] == "AQ=="
    metadata = invoker.calls[0].options.metadata
    gateway_keys = ("x-request-id", "grpcgateway-", "x-forwarded-")  # P11, T50
    assert ("grpcgateway-authorization", "Bearer t") in metadata
    assert ("x-forwarded-for", "127.0.0.1") in metadata
    assert sorted(m for m in metadata if not m[0].startswith(gateway_keys)) == [
        ("authorization", "Bearer t"),
        ("data-bin", b"\x00\x01"),
        ("kubeflow-userid", "alice@example.com"),
        ("x-custom", "v"),
    ]
    assert metadata[-1] == ("x-request-id", resp.headers["X-Request-Id"])  # P11


async def test_response_body_scalar_and_http_body(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(
        unary_outcomes={
            "/tgtest.Library/GetBookTitle": book(),
            "/tgtest.Library/ReadFile": httpbody_pb2.HttpBody(
                content_type="text/plain; charset=utf-8", data=b"hello"
            ),
        }
    )
    client = await make_client(aiohttp_client, invoker)
    title = await client.get("/v1/shelves/s/books/b:title")
    assert await title.read() == b'"T"'
    file = await client.get("/v1/files/a%2Fb/c")
    assert file.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await file.read() == b"hello"
    assert invoker.calls[1].request == pb.ReadFileRequest(path="a%2Fb/c")


async def test_http_body_request_takes_raw_bytes(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/Upload": pb.Book()})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.post(
        "/v1/shelves/s/books/b:upload", data=b"\x00raw", headers={"Content-Type": "image/png"}
    )
    assert resp.status == 200
    request = invoker.calls[0].request
    assert isinstance(request, pb.UploadRequest)
    assert request.body.content_type == "image/png"
    assert request.body.data == b"\x00raw"


async def test_stream_ndjson_with_a_late_error(aiohttp_client: ClientFactory) -> None:
    error = RpcStatusError.of(grpc.StatusCode.ABORTED, "stop")
    invoker = FakeInvoker(
        stream_items={
            "/tgtest.Library/StreamBooks": [pb.Book(title="a"), pb.Book(title="b"), error]
        }
    )
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/shelves/s/books:stream?count=2")
    assert resp.status == 200
    assert await resp.read() == (
        b'{"result":{"title":"a"}}\n{"result":{"title":"b"}}\n'
        b'{"error":{"code":10,"message":"stop"}}\n'
    )
    assert invoker.calls[0].request == pb.StreamBooksRequest(shelf="shelves/s", count=2)
    assert invoker.stream_closed


async def test_stream_error_before_first_message_is_a_plain_error(
    aiohttp_client: ClientFactory,
) -> None:
    error = RpcStatusError.of(grpc.StatusCode.PERMISSION_DENIED, "no")
    invoker = FakeInvoker(stream_items={"/tgtest.Library/StreamBooks": [error]})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/shelves/s/books:stream")
    assert resp.status == 403
    assert await resp.read() == b'{"error":"no","code":7,"message":"no"}'


async def test_stream_sse(aiohttp_client: ClientFactory) -> None:
    error = RpcStatusError.of(grpc.StatusCode.INTERNAL, "boom")
    invoker = FakeInvoker(stream_items={"/tgtest.Library/StreamBooks": [pb.Book(title="a"), error]})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/shelves/s/books:stream", headers={"Accept": "text/event-stream"})
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert await resp.read() == (
        b'data: {"title":"a"}\n\nevent: error\ndata: {"code":13,"message":"boom"}\n\n'
    )


async def test_stream_http_body_chunks(aiohttp_client: ClientFactory) -> None:
    chunks = [
        httpbody_pb2.HttpBody(content_type="text/csv", data=b"a,b\n"),
        httpbody_pb2.HttpBody(data=b"1,2\n"),
    ]
    invoker = FakeInvoker(stream_items={"/tgtest.Library/StreamFile": chunks})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/stream-files/x.csv")
    assert resp.headers["Content-Type"] == "text/csv"
    assert await resp.read() == b"a,b\n1,2\n"


async def test_stream_http_body_failing_midway_is_cut_short(aiohttp_client: ClientFactory) -> None:
    error = RpcStatusError.of(grpc.StatusCode.DATA_LOSS, "disk gone")
    chunks = [httpbody_pb2.HttpBody(content_type="text/csv", data=b"a,b\n"), error]
    invoker = FakeInvoker(stream_items={"/tgtest.Library/StreamFile": chunks})
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/stream-files/x.csv")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()  # no final chunk: the client can tell the body is incomplete


@pytest.mark.parametrize(("healthy", "status"), [(True, 200), (False, 503)])
async def test_healthz(aiohttp_client: ClientFactory, healthy: bool, status: int) -> None:
    async def health() -> bool:
        return healthy

    client = await make_client(aiohttp_client, FakeInvoker(), health=health)
    resp = await client.get("/healthz")
    assert resp.status == status
    body = json.loads(await resp.read())
    assert body == (
        {"status": "SERVING"}
        if healthy
        else {"error": "not serving", "code": 14, "message": "not serving"}
    )


async def test_healthz_without_a_check_is_200(aiohttp_client: ClientFactory) -> None:
    client = await make_client(aiohttp_client, FakeInvoker())
    resp = await client.get("/healthz")
    assert (resp.status, await resp.read()) == (200, b'{"status":"SERVING"}')


async def test_client_disconnect_cancels_the_call(aiohttp_client: ClientFactory) -> None:
    invoker = FakeInvoker(gate=asyncio.Event())
    client = await make_client(aiohttp_client, invoker)
    request = asyncio.ensure_future(client.get("/v1/echo/x"))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if invoker.calls:
            break
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    for _ in range(100):
        await asyncio.sleep(0.01)
        if invoker.cancelled:
            break
    assert invoker.cancelled


async def test_replace_routes_serves_new_routes_from_the_next_request(
    aiohttp_client: ClientFactory,
) -> None:
    first, second = FakeInvoker(), FakeInvoker()
    app = create_gateway_app(TABLE, first, KFP)
    client = await aiohttp_client(app)
    assert (await client.get("/v1/echo/x")).status == 200
    table = RouteTable.from_services([service_with_rules([http_pb2.HttpRule(get="/v2/{name}")])])
    replace_routes(app, table, second)
    assert (await client.get("/v1/echo/x")).status == 404
    assert (await client.get("/v2/n")).status == 200
    assert [c.method for c in first.calls] == ["/tgtest.Echo/Echo"]
    assert [c.method for c in second.calls] == ["/adhoc.S/M0"]


async def test_client_leaving_a_stream_closes_the_upstream_stream(
    aiohttp_client: ClientFactory,
) -> None:
    invoker = FakeInvoker(
        stream_items={"/tgtest.Library/StreamBooks": [pb.Book(title="a")]}, hold_streams=True
    )
    client = await make_client(aiohttp_client, invoker)
    resp = await client.get("/v1/shelves/s/books:stream")
    assert await resp.content.readline() == b'{"result":{"title":"a"}}\n'
    resp.close()
    for _ in range(200):
        if invoker.stream_closed:
            break
        await asyncio.sleep(0.01)
    assert invoker.stream_closed


async def test_routes_from_a_separate_pool_serve_dynamic_messages(
    aiohttp_client: ClientFactory,
) -> None:
    pool = copy_into_new_pool(FIXTURE)
    table = RouteTable.from_services([pool.FindServiceByName("tgtest.Echo")])
    invoker = FakeInvoker()
    client = await aiohttp_client(create_gateway_app(table, invoker, GENERIC))
    resp = await client.post(
        "/v1/echo?ignored=1", data=b'{"fInt64":"5","ts":"2020-01-01T00:00:00Z"}', headers=JSON
    )
    assert resp.status == 200
    assert await resp.read() == b'{"fInt64":"5","ts":"2020-01-01T00:00:00Z"}'
    assert type(invoker.calls[0].request) is not pb.Scalars


@pytest.mark.parametrize(
    ("options", "status"), [(GENERIC, 200), (GatewayOptions.generic(strict=True), 400)]
)
async def test_a_body_on_a_get_is_ignored_or_strictly_refused(
    aiohttp_client: ClientFactory, options: GatewayOptions, status: int
) -> None:
    invoker = FakeInvoker(unary_outcomes={"/tgtest.Library/GetBook": book()})
    client = await make_client(aiohttp_client, invoker, options)
    resp = await client.get("/v1/shelves/s/books/b", data=b'{"title":"x"}')
    assert resp.status == status
    if status == 400:
        body = json.loads(await resp.read())
        assert body["message"] == "GET /v1/{name=shelves/*/books/*} takes no request body"
        assert not invoker.calls
    else:
        assert len(invoker.calls) == 1
