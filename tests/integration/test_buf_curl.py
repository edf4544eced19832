"""`buf curl`, the Connect project's own client, against both commands over gRPC-Web and Connect
(docs/decisions.md T80-T87). The schema is a FileDescriptorSet the test writes from the
generated Python modules (no protoc). Runs only with `-m buf`: it needs buf from npm, which
.ci/buf.sh installs at build/buf/node_modules/.bin/buf."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor, descriptor_pb2

from taskgate.api import task_pb2
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.servers import Taskgate
from tests.protos import transcoding_test_pb2 as pb
from tests.upstream_process import UpstreamProcess, running_upstream

pytestmark = pytest.mark.buf
BUF = Path(__file__).resolve().parents[2] / "build/buf/node_modules/.bin/buf"
PROTOCOLS = ["grpcweb", "connect"]
#: buf curl's exit status for a failed RPC is its gRPC code times 8.
EXIT_PER_CODE = 8


def descriptor_set(file: descriptor.FileDescriptor) -> bytes:
    """`file` and everything it imports, dependencies first, as a FileDescriptorSet."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(found: descriptor.FileDescriptor) -> None:
        if found.name in files:
            return
        for dependency in found.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        found.CopyToProto(proto)
        files[found.name] = proto

    add(file)
    return descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString()


@pytest.fixture(scope="module")
def test_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "transcoding_test.binpb"
    path.write_bytes(descriptor_set(pb.DESCRIPTOR))
    return path


@pytest.fixture(scope="module")
def task_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "task.binpb"
    path.write_bytes(descriptor_set(task_pb2.DESCRIPTOR))
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run .ci/buf.sh")
    with running_upstream() as process:
        yield process


@pytest.fixture
async def gateway(upstream: UpstreamProcess) -> AsyncIterator[str]:
    config = StandaloneConfig(upstream=upstream.target, port=0, options=GatewayOptions.generic())
    async with gateway_serving(config) as running:
        yield f"http://127.0.0.1:{running.port}"


async def buf_curl(
    protocol: str, schema: Path, url: str, data: Any, *headers: str
) -> tuple[int, list[Any], str]:
    """(exit status, the JSON documents printed: the messages, then the error if any, and
    stderr) of one `buf curl` (which prints the error to stderr)."""
    args = ["curl", "-v", "--protocol", protocol, "--schema", str(schema), "--timeout", "20s"]
    for header in headers:
        args += ["-H", header]
    args += ["--data", json.dumps(data), url]
    process = await asyncio.create_subprocess_exec(
        str(BUF), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    documents = json_documents(out.decode())
    if process.returncode:
        documents += json_documents(err.decode())
    return process.returncode, documents, err.decode()


def json_documents(text: str) -> list[Any]:
    documents = []
    decoder = json.JSONDecoder()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("buf: ")).strip()
    while text:
        document, end = decoder.raw_decode(text)
        documents.append(document)
        text = text[end:].strip()
    return documents


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unary_and_metadata(gateway: str, test_schema: Path, protocol: str) -> None:
    status, out, err = await buf_curl(
        protocol,
        test_schema,
        f"{gateway}/tgtest.Echo/Echo",
        {"fString": "héllo", "fInt64": "-3", "tags": ["a", "b"]},
        "X-Custom: c1",
    )
    assert status == 0, err
    assert out == [{"fString": "héllo", "fInt64": "-3", "tags": ["a", "b"]}]
    assert "X-Echo-X-Custom: c1" in err  # metadata there and back (-v prints the headers)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_server_streaming(gateway: str, test_schema: Path, protocol: str) -> None:
    status, out, err = await buf_curl(
        protocol,
        test_schema,
        f"{gateway}/tgtest.Library/StreamBooks",
        {"shelf": "s", "count": 3},
    )
    assert status == 0, err
    assert [book["name"] for book in out] == ["s/books/0", "s/books/1", "s/books/2"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_that_fails_midway(gateway: str, test_schema: Path, protocol: str) -> None:
    status, out, err = await buf_curl(
        protocol,
        test_schema,
        f"{gateway}/tgtest.Library/StreamBooks",
        {"shelf": "s", "count": 3, "failAfter": 1, "failCode": 10},
    )
    assert status == 10 * EXIT_PER_CODE, err
    assert out[0]["name"] == "s/books/0"
    assert out[-1]["code"] == "aborted"
    assert out[-1]["message"] == "failed after 1 books"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_error_with_details(gateway: str, test_schema: Path, protocol: str) -> None:
    status, out, err = await buf_curl(
        protocol,
        test_schema,
        f"{gateway}/tgtest.Library/Fail",
        {"code": 5, "message": "no such book", "withDetails": True},
    )
    assert status == 5 * EXIT_PER_CODE, err
    (error,) = out
    assert (error["code"], error["message"]) == ("not_found", "no such book")
    assert [d["type"] for d in error["details"]] == [
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_serve_create_and_list(taskgate: Taskgate, task_schema: Path, protocol: str) -> None:
    task = {
        "pipelineName": "pipeline/p",
        "runId": f"run-{protocol}",
        "mlmdExecutionID": "7",
        "fingerprint": "fp",
        "created_at": "2024-05-10T10:19:13Z",
    }
    base = taskgate.base_url
    status, out, err = await buf_curl(
        protocol, task_schema, f"{base}/api.TaskService/CreateTask", {"task": task}
    )
    assert status == 0, err
    created = out[0]
    status, out, err = await buf_curl(
        protocol, task_schema, f"{base}/api.TaskService/ListTasks", {}
    )
    assert status == 0, err
    assert [t["id"] for t in out[0]["tasks"]] == [created["id"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_serve_invalid_task(taskgate: Taskgate, task_schema: Path, protocol: str) -> None:
    status, out, err = await buf_curl(
        protocol,
        task_schema,
        f"{taskgate.base_url}/api.TaskService/CreateTask",
        {"task": {"runId": "r"}},
    )
    assert status == 3 * EXIT_PER_CODE, err
    assert out[0]["code"] == "invalid_argument"
    assert out[0]["details"][0]["type"] == "api.Error"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_large_response(gateway: str, test_schema: Path, protocol: str) -> None:
    """Connect unary answers are gzipped by T49 (Connect's own unary compression) and buf curl
    reads them; gRPC-Web answers are never compressed as HTTP bodies."""
    status, out, err = await buf_curl(
        protocol, test_schema, f"{gateway}/tgtest.Echo/Echo", {"fString": "x" * 5000}
    )
    assert status == 0, err
    assert out == [{"fString": "x" * 5000}]
    assert ("Content-Encoding: gzip" in err) == (protocol == "connect"), err
