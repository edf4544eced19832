"""gRPC-Web on the HTTP port of both commands (docs/decisions.md T80-T87), through aiohttp as
the client: `taskgate gateway` in front of the test upstream (tests/upstream_server.py, whose
Echo service echoes request metadata back as `x-echo-*` headers) and `taskgate serve` with KFP's
TaskService."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from taskgate.api import error_pb2, task_pb2
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.kfp import new_task
from tests.integration.servers import Taskgate
from tests.integration.test_observability import sample
from tests.integration.web_clients import envelope, grpc_web_call
from tests.protos import transcoding_test_pb2 as pb
from tests.upstream_process import UpstreamProcess, running_upstream

ECHO = "/tgtest.Echo/Echo"
FAIL = "/tgtest.Library/Fail"
STREAM_BOOKS = "/tgtest.Library/StreamBooks"
IMPORT_BOOKS = "/tgtest.Library/ImportBooks"
CREATE_TASK = "/api.TaskService/CreateTask"
LIST_TASKS = "/api.TaskService/ListTasks"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


@pytest.fixture
async def gateway(upstream: UpstreamProcess) -> AsyncIterator[str]:
    options = GatewayOptions.generic(max_body_bytes=100_000)
    config = StandaloneConfig(upstream=upstream.target, port=0, options=options)
    async with gateway_serving(config) as running:
        yield f"http://127.0.0.1:{running.port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("text", [False, True])
async def test_unary_with_metadata(gateway: str, http: aiohttp.ClientSession, text: bool) -> None:
    request = pb.Scalars(f_string="héllo", f_int64=-5, tags=["a", "b"])
    headers = {"X-Custom": "c1", "X-Blob-Bin": "AP8", "Authorization": "Bearer t"}
    answer = await grpc_web_call(http, gateway + ECHO, request, text=text, headers=headers)
    assert answer.http_status == 200
    assert answer.code == 0
    assert [pb.Scalars.FromString(m) for m in answer.messages] == [request]
    assert answer.headers["x-echo-x-custom"] == "c1"
    assert answer.headers["x-echo-authorization"] == "Bearer t"
    assert answer.headers["x-echo-x-blob-bin"].rstrip("=") == "AP8"
    assert "x-echo-x-grpc-web" not in answer.headers  # the protocol's own, not metadata


async def test_server_stream_then_error(gateway: str, http: aiohttp.ClientSession) -> None:
    request = pb.StreamBooksRequest(shelf="s", count=5, fail_after=2, fail_code=10)
    answer = await grpc_web_call(http, gateway + STREAM_BOOKS, request)
    assert [pb.Book.FromString(m).name for m in answer.messages] == ["s/books/0", "s/books/1"]
    assert (answer.code, answer.message) == (10, "failed after 2 books")


async def test_error_with_details(gateway: str, http: aiohttp.ClientSession) -> None:
    request = pb.FailRequest(code=5, message="no such book: é", with_details=True)
    answer = await grpc_web_call(http, gateway + FAIL, request)
    assert answer.http_status == 200
    assert answer.messages == []
    assert (answer.code, answer.message) == (5, "no such book: é")
    details = answer.status().details
    info = error_details_pb2.ErrorInfo()
    assert details[1].Unpack(info)
    assert info.reason == "FAIL"


async def test_deadline(gateway: str, http: aiohttp.ClientSession) -> None:
    request = pb.FailRequest(code=5, delay_ms=3000)
    answer = await grpc_web_call(http, gateway + FAIL, request, headers={"Grpc-Timeout": "200m"})
    assert answer.code == 4  # DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x00\x00\x00\x00\x10abc", 3),  # cut short
        (envelope(b"\xff\xff\xff"), 3),  # not a Scalars
        (envelope(b"x" * 200_000), 8),  # over --max-body-bytes
    ],
)
async def test_bad_content(
    gateway: str, http: aiohttp.ClientSession, body: bytes, code: int
) -> None:
    answer = await grpc_web_call(http, gateway + ECHO, body)
    assert answer.http_status == 200
    assert answer.code == code


async def test_client_streaming_is_unimplemented(gateway: str, http: aiohttp.ClientSession) -> None:
    answer = await grpc_web_call(http, gateway + IMPORT_BOOKS, pb.CreateBookRequest())
    assert answer.code == 12


async def test_counted_and_logged_as_grpc_web(
    gateway: str, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    labels = {"service": "tgtest.Library", "method": "Fail", "door": "grpc-web"}

    async def count() -> float:
        async with http.get(gateway + "/metrics") as response:
            return (
                sample(await response.text(), "taskgate_calls_total", code="NOT_FOUND", **labels)
                or 0
            )

    before = await count()
    with caplog.at_level(logging.INFO, logger="taskgate.access"):
        await grpc_web_call(http, gateway + FAIL, pb.FailRequest(code=5, message="m"))
    assert await count() == before + 1
    assert any(
        "grpc-web" in r.getMessage() and "NOT_FOUND" in r.getMessage() for r in caplog.records
    )


# --- taskgate serve: the call runs in-process ---------------------------------------------


async def test_serve_create_and_list_tasks(taskgate: Taskgate) -> None:
    created = await grpc_web_call(
        taskgate.http,
        taskgate.base_url + CREATE_TASK,
        task_pb2.CreateTaskRequest(task=new_task(runId="run-web")),
    )
    assert created.code == 0, created.trailers
    task = task_pb2.Task.FromString(created.messages[0])
    assert task.id
    assert task.runId == "run-web"
    listed = await grpc_web_call(
        taskgate.http, taskgate.base_url + LIST_TASKS, task_pb2.ListTasksRequest(), text=True
    )
    assert listed.code == 0
    response = task_pb2.ListTasksResponse.FromString(listed.messages[0])
    assert [t.id for t in response.tasks] == [task.id]


async def test_serve_error_carries_kfp_details(taskgate: Taskgate) -> None:
    answer = await grpc_web_call(
        taskgate.http,
        taskgate.base_url + CREATE_TASK,
        task_pb2.CreateTaskRequest(task=new_task(pipelineName="")),
    )
    assert answer.code == 3
    assert "must specify PipelineName" in answer.message
    error = error_pb2.Error()
    assert answer.status().details[0].Unpack(error)
