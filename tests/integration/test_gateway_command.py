"""`taskgate gateway` in front of a test gRPC server running in its own process (issue 4): the
REST client's view and what the upstream received (the Echo service returns its request and
echoes request metadata back as `x-echo-*` response headers)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import GatewayStartupError, StandaloneConfig, gateway_serving
from tests.upstream_process import UpstreamProcess, free_port, running_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


async def start(upstream: UpstreamProcess, **options: Any) -> Any:
    config = StandaloneConfig(
        upstream=upstream.target, port=0, options=GatewayOptions.generic(**options)
    )
    return gateway_serving(config)


@pytest.fixture
async def base_url(upstream: UpstreamProcess) -> AsyncIterator[str]:
    async with await start(upstream) as running:
        yield f"http://127.0.0.1:{running.port}"


async def call(
    method: str, url: str, body: str | bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    if body is not None and "Content-Type" not in headers:
        headers = {"Content-Type": "application/json", **headers}  # D16
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, data=body, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def json_call(
    method: str, url: str, body: str | None = None, **headers: str
) -> tuple[int, Any]:
    status, _, raw = await call(method, url, body, **headers)
    return status, json.loads(raw)


async def test_query_path_and_well_known_types_reach_the_upstream(base_url: str) -> None:
    query = (
        "?fInt64=9007199254740993&f_uint32=7&f_bool=true&f_double=NaN&f_bytes=aGk&color=RED"
        "&tags=a&tags=b&numbers=1&numbers=-2&labels[k]=v&counts[3]=4&nested.name=n&nested.child.count=2"
        "&ts=2024-01-02T03:04:05.5%2B01:00&dur=1.5s&w_int64=0&w_string=&mask=fString,nested.name"
        "&val=%7B%22a%22%3A1%7D&choice_b=5&opt_int=0"
    )
    status, echoed = await json_call("GET", f"{base_url}/v1/echo/h%C3%A9llo%2Fx{query}")
    assert status == 200
    assert echoed == {
        "fString": "héllo/x",
        "fInt64": "9007199254740993",
        "fUint32": 7,
        "fBool": True,
        "fDouble": "NaN",
        "fBytes": "aGk=",
        "color": "RED",
        "tags": ["a", "b"],
        "numbers": ["1", "-2"],
        "labels": {"k": "v"},
        "counts": {"3": "4"},
        "nested": {"name": "n", "child": {"count": 2}},
        "ts": "2024-01-02T02:04:05.500Z",
        "dur": "1.500s",
        "wInt64": "0",
        "wString": "",
        "mask": "fString,nested.name",
        "val": {"a": 1.0},
        "choiceB": 5,
        "optInt": 0,
    }


async def test_bodies_bindings_and_response_body(base_url: str) -> None:
    status, echoed = await json_call(
        "POST", f"{base_url}/v1/echo", json.dumps({"fString": "s", "f_int32": 3, "shownAs": "x"})
    )
    assert (status, echoed) == (200, {"fString": "s", "fInt32": 3, "shownAs": "x"})
    status, echoed = await json_call(
        "PUT", f"{base_url}/v1/echo/p/nested", json.dumps({"name": "b"})
    )
    assert (status, echoed) == (200, {"fString": "p", "nested": {"name": "b"}})
    status, echoed = await json_call("SEARCH", f"{base_url}/v1/echo:search?f_string=q")
    assert (status, echoed) == (200, {"fString": "q"})
    status, echoed = await json_call(
        "PATCH", f"{base_url}/v1/any-method", json.dumps({"fInt32": 1})
    )
    assert (status, echoed) == (200, {"fInt32": 1})
    status, echoed = await json_call("GET", f"{base_url}/v1/echo/nested/a/x/y/z")
    assert (status, echoed) == (200, {"nested": {"name": "a", "child": {"name": "x/y/z"}}})
    status, book = await json_call("GET", f"{base_url}/v1/shelves/s1/books/b1")
    assert status == 200
    assert book["name"] == "shelves/s1/books/b1"
    status, title = await json_call("GET", f"{base_url}/v1/shelves/s1/books/b1:title")
    assert (status, title) == (200, book["title"])
    status, moved = await json_call(
        "POST",
        f"{base_url}/v1/shelves/s1/books/b1:move",
        json.dumps({"otherShelfName": "shelves/s2"}),
    )
    assert (status, moved["name"]) == (200, "shelves/s2/books/b1")
    status, listed = await json_call("GET", f"{base_url}/v1/books?pageSize=2")
    assert status == 200
    assert "books" in listed


async def test_http_body_both_ways(base_url: str) -> None:
    status, headers, raw = await call(
        "GET", f"{base_url}/v1/files/a/b%2Fc.txt?contentType=text/csv"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert raw == b"contents of a/b%2Fc.txt"
    status, book = await json_call(
        "POST",
        f"{base_url}/v1/shelves/s/books/b:upload",
        "\x00\x01binary",
        **{"Content-Type": "application/octet-stream"},
    )
    assert (status, book) == (
        200,
        {"name": "shelves/s/books/b", "title": "8 bytes of application/octet-stream"},
    )


async def test_server_streaming_ndjson_sse_and_mid_stream_errors(base_url: str) -> None:
    status, headers, raw = await call("GET", f"{base_url}/v1/shelves/s1/books:stream?count=3")
    assert status == 200
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert [line["result"]["name"] for line in lines] == [f"shelves/s1/books/{i}" for i in range(3)]
    status, _, raw = await call(
        "GET", f"{base_url}/v1/shelves/s1/books:stream?count=3&failAfter=2&failCode=10"
    )
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert status == 200
    assert len(lines) == 3
    assert lines[-1]["error"]["code"] == 10
    assert lines[-1]["error"]["message"] == "failed after 2 books"
    status, body = await json_call(
        "GET", f"{base_url}/v1/shelves/s1/books:stream?count=3&failAfter=0&failCode=9"
    )
    assert status == 400  # an error before the first message is a plain error response
    assert body["code"] == 9
    status, headers, raw = await call(
        "GET", f"{base_url}/v1/shelves/s1/books:stream?count=2", Accept="text/event-stream"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = [block for block in raw.decode().split("\n\n") if block]
    assert len(events) == 2
    assert events[0].startswith("data: ")
    status, _, raw = await call("GET", f"{base_url}/v1/stream-files/x")
    assert raw == b"".join(f"chunk {i} of x\n".encode() for i in range(3))


async def test_error_details_and_unknown_detail_types(base_url: str) -> None:
    status, body = await json_call(
        "POST",
        f"{base_url}/v1/fail",
        json.dumps(
            {"code": 5, "message": "no such book", "withDetails": True, "unknownDetail": True}
        ),
    )
    assert status == 404
    assert body["code"] == 5
    assert body["message"] == "no such book"
    types = [detail["@type"] for detail in body["details"]]
    assert types == [
        "type.googleapis.com/google.rpc.BadRequest",
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/nowhere.Unknown",
    ]
    assert body["details"][0]["fieldViolations"] == [
        {"field": "name", "description": "must not be empty"}
    ]
    assert base64.b64decode(body["details"][2]["value"]) == b"\x08\x2a"


async def test_metadata_deadlines_and_routing_misses(base_url: str) -> None:
    status, headers, _ = await call(
        "GET", f"{base_url}/v1/echo/m", **{"Grpc-Metadata-Trace": "t1", "Authorization": "Bearer x"}
    )
    assert status == 200
    assert headers["Grpc-Metadata-X-Echo-Trace"] == "t1"
    assert headers["Grpc-Metadata-X-Echo-Authorization"] == "Bearer x"
    status, body = await json_call(
        "POST", f"{base_url}/v1/fail", json.dumps({"delayMs": 2000}), **{"Grpc-Timeout": "100m"}
    )
    assert (status, body["code"]) == (504, 4)
    status, body = await json_call("GET", f"{base_url}/v1/nowhere")
    assert (status, body["code"]) == (404, 5)
    status, headers, _ = await call("DELETE", f"{base_url}/v1/echo")
    assert status == 405
    assert "POST" in headers["Allow"]
    status, body = await json_call("GET", f"{base_url}/v1/echo/x?f_int32=abc")
    assert status == 400
    assert "f_int32" in body["message"]


async def test_strict_and_proto_names(upstream: UpstreamProcess) -> None:
    async with await start(
        upstream, strict=True, use_proto_field_names=True, emit_unpopulated=True
    ) as running:
        url = f"http://127.0.0.1:{running.port}"
        status, body = await json_call("GET", f"{url}/v1/echo/x?bogus=1")
        assert status == 400
        assert "bogus" in body["message"]
        status, echoed = await json_call("GET", f"{url}/v1/echo/x?f_int32=1")
        assert status == 200
        assert echoed["f_string"] == "x"
        assert echoed["f_int64"] == "0"  # emitted although unpopulated


async def test_upstream_down_then_back(tmp_path: Path) -> None:
    port = free_port()
    with running_upstream(port=port) as first:
        async with await start(first) as running:
            url = f"http://127.0.0.1:{running.port}/v1/echo/x"
            assert (await json_call("GET", url))[0] == 200
            first.process.terminate()
            first.process.wait(timeout=10)
            status, body = await json_call("GET", url)
            assert status == 503
            assert f"127.0.0.1:{port}" in body["message"]
            with running_upstream(port=port):
                for _ in range(100):
                    status, _ = await json_call("GET", url)
                    if status == 200:
                        break
                    await asyncio.sleep(0.1)
                assert status == 200


async def test_startup_errors_name_the_upstream(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(GatewayStartupError, match=dead):
        async with gateway_serving(StandaloneConfig(upstream=dead, port=0)):
            pass


def test_command_line_gateway_serves_rest(upstream: UpstreamProcess) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskgate",
            "gateway",
            "--upstream",
            upstream.target,
            "--http-address",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "ready" in line:
                break
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v1/echo/cli?fInt32=2", timeout=10
        ) as response:
            assert json.loads(response.read()) == {"fString": "cli", "fInt32": 2}
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        if process.stdout is not None:
            process.stdout.close()


def descriptor_set_file(directory: Path) -> Path:
    """The fixture proto and its imports as a FileDescriptorSet (protoc --include_imports)."""
    from google.protobuf import descriptor_pb2

    from taskgate.gateway.discovery import default_pool_file, with_imports
    from tests.protos import transcoding_test_pb2

    files = with_imports([default_pool_file(transcoding_test_pb2.DESCRIPTOR.name)])
    path = directory / "transcoding_test.binpb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=files.values()).SerializeToString())
    return path


async def test_garbage_and_hanging_upstreams_get_502_and_504(tmp_path: Path) -> None:
    import grpc

    from tests.upstream_process import serve_handlers

    async def garbage(request: bytes, context: Any) -> bytes:
        return b"\xff\xff\xff"

    async def hang(request: bytes, context: Any) -> bytes:
        await asyncio.sleep(30)
        return b""

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetBook": grpc.unary_unary_rpc_method_handler(garbage),
        "ListBooks": grpc.unary_unary_rpc_method_handler(hang),
    }
    async with serve_handlers("tgtest.Library", handlers) as target:
        config = StandaloneConfig(
            upstream=target,
            port=0,
            descriptor_set=descriptor_set_file(tmp_path),
            options=GatewayOptions.generic(default_timeout=0.5),
        )
        async with gateway_serving(config) as running:
            url = f"http://127.0.0.1:{running.port}/v1"
            status, body = await json_call("GET", f"{url}/shelves/s/books/b")
            assert status == 502
            assert (
                body["message"]
                == f"upstream {target} sent a malformed response to /tgtest.Library/GetBook"
            )
            status, body = await json_call("GET", f"{url}/books")
            assert (status, body["code"]) == (504, 4)
            status, body = await json_call("GET", f"{url}/echo/x")
            # The descriptor set's Echo is routed too, but this server answers UNIMPLEMENTED.
            assert (status, body["code"]) == (501, 12)
            status, _ = await json_call("GET", f"{url}/shelves/s/books/b")
            assert status == 502


async def test_refresh_picks_up_a_redeployed_upstream(database_url: str, pool: Any) -> None:
    from taskgate.command import Address
    from taskgate.server.lifecycle import serving
    from tests.integration.servers import serve_settings

    port = free_port()
    with running_upstream(port=port) as first:
        config = StandaloneConfig(upstream=first.target, port=0)
        async with gateway_serving(config) as running:
            url = f"http://127.0.0.1:{running.port}"
            assert (await json_call("GET", f"{url}/v1/echo/x"))[0] == 200
            assert (await json_call("GET", f"{url}/apis/v1alpha1/tasks"))[0] == 404
            first.process.terminate()
            first.process.wait(timeout=10)
            from dataclasses import replace

            settings = replace(
                serve_settings(database_url), grpc_address=Address("127.0.0.1", port)
            )
            async with serving(settings):
                running.request_refresh()
                for _ in range(100):
                    if (await json_call("GET", f"{url}/apis/v1alpha1/tasks"))[0] == 200:
                        break
                    await asyncio.sleep(0.1)
                assert await json_call("GET", f"{url}/apis/v1alpha1/tasks") == (200, {})
                assert (await json_call("GET", f"{url}/v1/echo/x"))[0] == 404
