"""discover_services against real servers: the test upstream (as a process) and tiny in-process ones."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

from taskgate.gateway.discovery import DiscoveryError, default_pool_file, discover_services
from taskgate.gateway.http_rules import http_rule_for
from taskgate.gateway.upstream import open_upstream_channel
from tests.protos import transcoding_test_pb2
from tests.upstream_process import (
    UpstreamProcess,
    free_port,
    running_upstream,
    serve_handlers,
    start_upstream,
)

pytestmark = pytest.mark.integration

SERVICES = {"tgtest.Library", "tgtest.Echo"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as running:
        yield running


async def discover(target: str) -> Any:
    async with open_upstream_channel(target) as channel:
        return await discover_services(channel, target=target, timeout=5)


async def test_finds_the_services_but_not_reflection_or_health(upstream: UpstreamProcess) -> None:
    found = await discover(upstream.target)

    assert {s.full_name for s in found.services} == SERVICES
    assert found.pool is not descriptor_pool.Default()


async def test_pool_holds_messages_and_their_imports(upstream: UpstreamProcess) -> None:
    found = await discover(upstream.target)

    method = found.pool.FindMethodByName("tgtest.Library.ReadFile")
    assert method.output_type.full_name == "google.api.HttpBody"
    assert found.pool.FindMessageTypeByName("google.protobuf.Timestamp").name == "Timestamp"
    assert found.pool.FindMessageTypeByName("tgtest.Scalars").fields_by_name["display_name"]


async def test_http_rule_is_readable_after_reparsing_the_options(upstream: UpstreamProcess) -> None:
    found = await discover(upstream.target)
    rule = http_rule_for(found.pool.FindMethodByName("tgtest.Library.GetBook"))

    assert rule is not None
    assert rule.get == "/v1/{name=shelves/*/books/*}"


@pytest.mark.parametrize("versions", ["v1", "v1alpha"])
async def test_either_reflection_version_is_enough(versions: str) -> None:
    async with start_upstream("--reflection", versions) as (port, _):
        found = await discover(f"127.0.0.1:{port}")
    assert {s.full_name for s in found.services} == SERVICES


async def test_no_reflection_is_a_clear_error() -> None:
    async with start_upstream("--reflection", "none") as (port, _):
        with pytest.raises(DiscoveryError) as caught:
            await discover(f"127.0.0.1:{port}")
    assert str(caught.value) == (
        f"upstream 127.0.0.1:{port} does not serve gRPC server reflection "
        "(grpc.reflection.v1 or v1alpha); enable reflection there or pass --descriptor-set FILE"
    )


async def test_unreachable_upstream_is_named() -> None:
    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(DiscoveryError) as caught:
        await discover(target)
    assert str(caught.value) == f"cannot reach upstream {target}: connection refused"


#: The in-process server below never sends this file, so it must come from the default pool.
OMITTED = "google/protobuf/struct.proto"


class MinimalReflection:
    """v1alpha only; sends one file per answer (no dependencies), and never sends OMITTED."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def handle(
        self, requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async for request in requests:
            response = reflection_pb2.ServerReflectionResponse(original_request=request)
            kind = request.WhichOneof("message_request")
            self.asked.append(f"{kind}:{getattr(request, kind)}")
            if kind == "list_services":
                response.list_services_response.service.add(name="tgtest.Echo")
            elif kind == "file_containing_symbol":
                self._send(response, transcoding_test_pb2.DESCRIPTOR.name)
            elif request.file_by_filename == OMITTED:
                response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            else:
                self._send(response, request.file_by_filename)
            yield response

    @staticmethod
    def _send(response: reflection_pb2.ServerReflectionResponse, filename: str) -> None:
        proto = default_pool_file(filename)
        response.file_descriptor_response.file_descriptor_proto.append(proto.SerializeToString())


async def test_dependencies_are_fetched_by_name_and_omitted_ones_come_from_the_default_pool() -> (
    None
):
    reflection = MinimalReflection()
    handler = grpc.stream_stream_rpc_method_handler(
        reflection.handle,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    service = "grpc.reflection.v1alpha.ServerReflection"
    async with serve_handlers(service, {"ServerReflectionInfo": handler}) as target:
        found = await discover(target)

    assert [s.full_name for s in found.services] == ["tgtest.Echo"]
    assert f"file_by_filename:{OMITTED}" in reflection.asked
    assert "file_by_filename:google/api/http.proto" in reflection.asked  # an import of an import
    assert found.pool.FindMessageTypeByName("google.protobuf.Struct").name == "Struct"


def test_grpcurl_lists_and_calls_the_test_upstream(upstream: UpstreamProcess) -> None:
    def grpcurl(*args: str) -> str:
        command = ["grpcurl", "-plaintext", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    listed = grpcurl(upstream.target, "list").split()
    assert set(listed) >= {*SERVICES, "grpc.health.v1.Health"}
    # Python's reflection resolves services, not methods ("describe tgtest.Library.GetBook" fails).
    assert "google.api.http" in grpcurl(upstream.target, "describe", "tgtest.Library")
    answer = grpcurl(
        "-d", '{"name": "shelves/1/books/2"}', upstream.target, "tgtest.Library/GetBook"
    )
    assert '"title": "title of shelves/1/books/2"' in answer
