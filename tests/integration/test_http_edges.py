"""The REST door's edges over real sockets (docs/decisions.md T23, T44, T50-T52): requests aiohttp
cannot parse get the JSON error shape without their bytes echoed, `OPTIONS *`, and, through
`taskgate gateway` in front of the test upstream (which echoes request metadata back as
`x-echo-*`), forwarded headers, the whole Grpc-Timeout range, a singular query parameter given
twice, and an upstream whose bindings are partly bad."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor_pb2

from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.discovery import default_pool_file, with_imports
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import GatewayStartupError, StandaloneConfig, gateway_serving
from tests.protos import transcoding_test_pb2
from tests.unit.gateway.descriptors import fixture_table
from tests.unit.gateway.fakes import FakeInvoker
from tests.upstream_process import UpstreamProcess, running_upstream

pytestmark = pytest.mark.timeout(120)

#: A marker in each malformed request: it must never come back in the answer.
MARKER = b"MARKER<script>"
STYLES = {"kfp": GatewayOptions.kfp(), "status": GatewayOptions.generic()}


@asynccontextmanager
async def served(options: GatewayOptions) -> AsyncIterator[int]:
    async with AsyncExitStack() as stack:
        app = create_gateway_app(fixture_table(), FakeInvoker(), options)
        yield await start_http(stack, app, "127.0.0.1", 0, shutdown_timeout=0.5)


async def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the one answer (the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED = [
    (b"GE\x01T /v1/echo/" + MARKER + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad method"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARKER, 400, "bad method"),
    (b"GET /v1/" + MARKER + b" HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed HTTP request line"),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: " + MARKER + b"\r\n\r\n", 400, "malformed"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + MARKER + b"\r\n\r\n", 400, "malformed"),
    (b"GET /" + MARKER + b"a" * (1024 * 1024 + 10) + b" HTTP/1.1\r\n\r\n", 414, "request line"),
    (
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + MARKER + b"a" * (70 * 1024) + b"\r\n\r\n",
        431,
        "header",
    ),
    (
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        + b"\r\n",
        431,
        "too many headers",
    ),
]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("data", "status", "words"), MALFORMED)
async def test_a_request_aiohttp_cannot_parse_gets_the_json_error_shape(
    style: str, data: bytes, status: int, words: str
) -> None:
    async with served(STYLES[style]) as port:
        got, headers, body = await exchange(port, data)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert MARKER not in body
    assert b"script" not in body
    document = json.loads(body)
    assert document["code"] == 3
    assert words in document["message"]
    if style == "kfp":
        assert set(document) == {"error", "code", "message"}
        assert document["error"] == document["message"]
    else:
        assert set(document) == {"code", "message"}


@pytest.mark.parametrize("style", STYLES)
async def test_options_asterisk_is_answered_as_go_answers_it(style: str) -> None:
    async with served(STYLES[style]) as port:
        status, headers, body = await exchange(
            port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert (status, body, headers["content-length"]) == (200, b"", "0")
        # The port still serves the app afterwards, and an unknown path stays a JSON 404.
        status, headers, body = await exchange(
            port, b"OPTIONS /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status == 404
        assert json.loads(body)["code"] == 5


# --- through `taskgate gateway` and the test upstream -------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


@pytest.fixture
async def base_url(upstream: UpstreamProcess) -> AsyncIterator[str]:
    config = StandaloneConfig(upstream=upstream.target, port=0, options=GatewayOptions.generic())
    async with gateway_serving(config) as running:
        yield f"http://127.0.0.1:{running.port}"


async def call(url: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, dict(response.headers), json.loads(await response.read())


async def test_permanent_and_forwarded_headers_reach_the_upstream(base_url: str) -> None:
    status, headers, _ = await call(
        f"{base_url}/v1/echo/x",
        **{
            "Accept-Language": "fr",
            "Cookie": "session=1",
            "X-Forwarded-For": "203.0.113.9",
            "Grpc-Metadata-X-Forwarded-Host": "forged",
        },
    )
    assert status == 200
    assert headers["Grpc-Metadata-X-Echo-Grpcgateway-Accept-Language"] == "fr"
    assert headers["Grpc-Metadata-X-Echo-Grpcgateway-Cookie"] == "session=1"
    assert headers["Grpc-Metadata-X-Echo-X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["Grpc-Metadata-X-Echo-X-Forwarded-Host"] == base_url.removeprefix("http://")


@pytest.mark.parametrize("value", ["99999999H", "2600000H"])
async def test_grpc_timeout_takes_its_whole_range(base_url: str, value: str) -> None:
    status, _, body = await call(f"{base_url}/v1/echo/x", **{"Grpc-Timeout": value})
    assert (status, body) == (200, {"fString": "x"})


@pytest.mark.parametrize("value", ["123456789H", "1D"])
async def test_a_malformed_grpc_timeout_is_a_400_naming_it(base_url: str, value: str) -> None:
    status, _, body = await call(f"{base_url}/v1/echo/x", **{"Grpc-Timeout": value})
    assert status == 400
    assert f'invalid Grpc-Timeout header "{value}"' in body["message"]


async def test_a_singular_query_parameter_given_twice_is_a_400(base_url: str) -> None:
    status, _, body = await call(f"{base_url}/v1/echo/x?fInt32=1&fInt32=2")
    assert (status, body["code"]) == (400, 3)
    assert body["message"] == 'query parameter "fInt32" is given more than once'


def descriptor_set_with_bad_bindings(directory: Path) -> Path:
    """The fixture's files, with Echo's rule given a repeated-field path variable, a copy of its
    own main binding, and a binding whose body names no field."""
    files = with_imports([default_pool_file(transcoding_test_pb2.DESCRIPTOR.name)])
    fixture = files[transcoding_test_pb2.DESCRIPTOR.name]
    (service,) = [s for s in fixture.service if s.name == "Echo"]
    (method,) = [m for m in service.method if m.name == "Echo"]
    options = descriptor_pb2.MethodOptions.FromString(method.options.SerializeToString())
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    rule.additional_bindings.add(get="/v1/echo-tags/{tags}")
    rule.additional_bindings.add(get="/v1/echo/{f_string}")
    rule.additional_bindings.add(post="/v1/echo-bad", body="nope")
    method.options.CopyFrom(options)
    path = directory / "bad_bindings.binpb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=files.values()).SerializeToString())
    return path


async def test_bad_bindings_are_skipped_and_the_rest_serve(
    upstream: UpstreamProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = StandaloneConfig(
        upstream=upstream.target, port=0, descriptor_set=descriptor_set_with_bad_bindings(tmp_path)
    )
    async with gateway_serving(config) as running:
        url = f"http://127.0.0.1:{running.port}/v1"
        status, _, body = await call(f"{url}/echo/x")
        assert (status, body) == (200, {"fString": "x"})
        status, _, body = await call(f"{url}/echo-tags/a,b%2Cc")
        assert (status, body) == (200, {"tags": ["a", "b", "c"]})
        status, _, body = await call(f"{url}/books")
        assert status == 200
    assert "duplicates /v1/echo/{f_string} (tgtest.Echo.Echo)" in caplog.text
    assert "body 'nope' is not a field of tgtest.Scalars" in caplog.text


async def test_strict_refuses_to_start_on_a_bad_binding(
    upstream: UpstreamProcess, tmp_path: Path
) -> None:
    config = StandaloneConfig(
        upstream=upstream.target,
        port=0,
        descriptor_set=descriptor_set_with_bad_bindings(tmp_path),
        options=GatewayOptions.generic(strict=True),
    )
    with pytest.raises(GatewayStartupError, match=r"body 'nope' is not a field of tgtest\.Scalars"):
        async with gateway_serving(config):
            pass
