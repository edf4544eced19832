"""The Connect protocol on the HTTP port of both commands (docs/decisions.md T80-T87), through
aiohttp as the client: `taskgate gateway` in front of the test upstream and `taskgate serve`
with KFP's TaskService."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from google.protobuf import json_format

from taskgate.api import task_pb2
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig, gateway_serving
from tests.integration.kfp import new_task
from tests.integration.servers import Taskgate
from tests.integration.test_observability import sample
from tests.integration.web_clients import connect_stream, connect_unary
from tests.protos import transcoding_test_pb2 as pb
from tests.upstream_process import UpstreamProcess, running_upstream

ECHO = "/tgtest.Echo/Echo"
FAIL = "/tgtest.Library/Fail"
STREAM_BOOKS = "/tgtest.Library/StreamBooks"
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


async def test_unary_json_with_metadata(gateway: str, http: aiohttp.ClientSession) -> None:
    body = b'{"fString":"h\xc3\xa9llo","f_int64":"-5","tags":["a"],"unknownField":1}'
    headers = {"X-Custom": "c1", "Kubeflow-Userid": "alice"}
    answer = await connect_unary(http, gateway + ECHO, body, headers=headers)
    assert answer.http_status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"fString": "héllo", "fInt64": "-5", "tags": ["a"]}
    assert answer.headers["x-echo-x-custom"] == "c1"
    assert answer.headers["x-echo-kubeflow-userid"] == "alice"
    assert "x-echo-connect-protocol-version" not in answer.headers


async def test_unary_proto_with_gzip_request_body(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    request = pb.Scalars(f_string="zipped", numbers=[1, 2, 3])
    answer = await connect_unary(
        http,
        gateway + ECHO,
        gzip.compress(request.SerializeToString()),
        content_type="application/proto",
        headers={"Content-Encoding": "gzip"},
    )
    assert answer.http_status == 200
    assert answer.headers["Content-Type"] == "application/proto"
    assert pb.Scalars.FromString(answer.body) == request


async def test_unsupported_content_encoding_is_unimplemented(
    gateway: str, http: aiohttp.ClientSession
) -> None:
    """Connect's rule (`unimplemented`, naming what is accepted), not REST's 415 (T82)."""
    answer = await connect_unary(http, gateway + ECHO, b"\x00", headers={"Content-Encoding": "br"})
    assert answer.http_status == 501
    assert answer.headers["Accept-Encoding"] == "gzip, deflate"
    assert answer.json()["code"] == "unimplemented"


async def test_error_with_details(gateway: str, http: aiohttp.ClientSession) -> None:
    body = json.dumps({"code": 9, "message": "not now", "withDetails": True}).encode()
    answer = await connect_unary(http, gateway + FAIL, body)
    assert answer.http_status == 400  # failed_precondition
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()
    assert (error["code"], error["message"]) == ("failed_precondition", "not now")
    types = [d["type"] for d in error["details"]]
    assert types == ["google.rpc.BadRequest", "google.rpc.ErrorInfo"]
    assert error["details"][1]["debug"]["reason"] == "FAIL"
    assert "=" not in error["details"][1]["value"]


async def test_deadline(gateway: str, http: aiohttp.ClientSession) -> None:
    body = json.dumps({"code": 5, "delayMs": 3000}).encode()
    answer = await connect_unary(http, gateway + FAIL, body, headers={"Connect-Timeout-Ms": "200"})
    assert answer.http_status == 504
    assert answer.json()["code"] == "deadline_exceeded"


@pytest.mark.parametrize(
    ("body", "content_type", "http_status", "code"),
    [
        (b'{"fInt64": "x"}', "application/json", 400, "invalid_argument"),
        (b"\xff\xff\xff", "application/proto", 400, "invalid_argument"),
        (b'{"fString":"' + b"x" * 200_000 + b'"}', "application/json", 429, "resource_exhausted"),
    ],
)
async def test_bad_content(
    gateway: str,
    http: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    http_status: int,
    code: str,
) -> None:
    answer = await connect_unary(http, gateway + ECHO, body, content_type=content_type)
    assert answer.http_status == http_status
    assert answer.json()["code"] == code


async def test_server_stream(gateway: str, http: aiohttp.ClientSession) -> None:
    request = b'{"shelf":"s","count":5,"failAfter":2,"failCode":10}'
    status, messages, end = await connect_stream(http, gateway + STREAM_BOOKS, request)
    assert status == 200
    assert [json.loads(m)["name"] for m in messages] == ["s/books/0", "s/books/1"]
    assert end["error"] == {"code": "aborted", "message": "failed after 2 books"}


async def test_server_stream_proto(gateway: str, http: aiohttp.ClientSession) -> None:
    request = pb.StreamBooksRequest(shelf="p", count=2).SerializeToString()
    status, messages, end = await connect_stream(
        http, gateway + STREAM_BOOKS, request, codec="proto"
    )
    assert status == 200
    assert [pb.Book.FromString(m).name for m in messages] == ["p/books/0", "p/books/1"]
    assert "error" not in end


async def test_counted_as_connect(gateway: str, http: aiohttp.ClientSession) -> None:
    labels = {"service": "tgtest.Echo", "method": "Echo", "door": "connect", "code": "OK"}

    async def count() -> float:
        async with http.get(gateway + "/metrics") as response:
            return sample(await response.text(), "taskgate_calls_total", **labels) or 0

    before = await count()
    await connect_unary(http, gateway + ECHO, b"{}")
    assert await count() == before + 1


async def test_rest_still_answers_beside_connect(gateway: str, http: aiohttp.ClientSession) -> None:
    async with http.get(gateway + "/v1/echo/plain") as response:
        assert response.status == 200
        assert (await response.json())["fString"] == "plain"


# --- taskgate serve: the call runs in-process ---------------------------------------------


async def test_serve_create_and_list_tasks(taskgate: Taskgate) -> None:
    request = task_pb2.CreateTaskRequest(task=new_task(runId="run-connect"))
    created = await connect_unary(
        taskgate.http, taskgate.base_url + CREATE_TASK, json_format.MessageToJson(request).encode()
    )
    assert created.http_status == 200, created.body
    task_id = created.json()["id"]
    listed = await connect_unary(
        taskgate.http,
        taskgate.base_url + LIST_TASKS,
        task_pb2.ListTasksRequest().SerializeToString(),
        content_type="application/proto",
    )
    assert listed.http_status == 200
    response = task_pb2.ListTasksResponse.FromString(listed.body)
    assert [t.id for t in response.tasks] == [task_id]


async def test_serve_error_has_the_kfp_detail(taskgate: Taskgate) -> None:
    body = task_pb2.CreateTaskRequest(task=new_task(pipelineName="")).SerializeToString()
    answer = await connect_unary(
        taskgate.http,
        taskgate.base_url + CREATE_TASK,
        body,
        content_type="application/proto",
    )
    assert answer.http_status == 400
    error = answer.json()
    assert error["code"] == "invalid_argument"
    assert "must specify PipelineName" in error["message"]
    assert error["details"][0]["type"] == "api.Error"
    assert "must specify PipelineName" in json.dumps(error["details"][0]["debug"])
