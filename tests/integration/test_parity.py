"""REST × gRPC parity: every scenario through both doors must give the same result, errors
included (gRPC code ↔ HTTP status, status message, api.Error detail)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from google.protobuf import json_format

from taskgate.api import resource_reference_pb2, task_pb2
from tests.integration.kfp import eq_filter, new_task
from tests.integration.servers import Taskgate

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}
RT = resource_reference_pb2.ResourceType


@dataclass(frozen=True)
class Scenario:
    name: str
    rpc: str
    request: dict[str, Any]
    http_method: str
    query: str = ""
    body: str | None = None
    ignore: frozenset[str] = field(default_factory=frozenset)


TASK = json_format.MessageToDict(new_task(), preserving_proto_field_name=True)
FILTER = eq_filter(fingerprint="fp", pipelineName="pipeline/p1", namespace="ns1")

SCENARIOS = [
    Scenario(
        "create",
        "CreateTask",
        {"task": TASK},
        "POST",
        body=json.dumps(TASK),
        ignore=frozenset({"id"}),
    ),
    Scenario(
        "create without runId",
        "CreateTask",
        {"task": {**TASK, "runId": ""}},
        "POST",
        body=json.dumps({**TASK, "runId": ""}),
    ),
    Scenario(
        "create with id",
        "CreateTask",
        {"task": {**TASK, "id": "x"}},
        "POST",
        body=json.dumps({**TASK, "id": "x"}),
    ),
    Scenario("create empty", "CreateTask", {}, "POST", body=""),
    Scenario(
        "create long",
        "CreateTask",
        {"task": {**TASK, "fingerprint": "f" * 300}},
        "POST",
        body=json.dumps({**TASK, "fingerprint": "f" * 300}),
    ),
    Scenario("list all", "ListTasks", {}, "GET"),
    Scenario(
        "list page",
        "ListTasks",
        {"page_size": 2, "sort_by": "created_at desc"},
        "GET",
        "?page_size=2&sort_by=created_at%20desc",
    ),
    Scenario(
        "driver lookup",
        "ListTasks",
        {"page_size": 1, "sort_by": "created_at desc", "filter": FILTER},
        "GET",
        f"?page_size=1&sort_by=created_at+desc&filter={quote(FILTER)}",
    ),
    Scenario(
        "by pipeline",
        "ListTasks",
        {"resource_reference_key": {"type": "PIPELINE", "id": "pipeline/p1"}},
        "GET",
        "?resource_reference_key.type=PIPELINE&resource_reference_key.id=pipeline%2Fp1",
    ),
    Scenario(
        "experiment key",
        "ListTasks",
        {"resource_reference_key": {"type": "EXPERIMENT", "id": "e"}},
        "GET",
        "?resource_reference_key.type=EXPERIMENT&resource_reference_key.id=e",
    ),
    Scenario(
        "unknown key type",
        "ListTasks",
        {"resource_reference_key": {"id": "e"}},
        "GET",
        "?resource_reference_key.id=e",
    ),
    Scenario("negative page size", "ListTasks", {"page_size": -1}, "GET", "?page_size=-1"),
    Scenario(
        "bad sort",
        "ListTasks",
        {"sort_by": "created_at sideways"},
        "GET",
        "?sort_by=created_at%20sideways",
    ),
    Scenario("unknown sort field", "ListTasks", {"sort_by": "status"}, "GET", "?sort_by=status"),
    Scenario("bad filter", "ListTasks", {"filter": "{"}, "GET", "?filter=%7B"),
    Scenario(
        "unknown filter key",
        "ListTasks",
        {"filter": eq_filter(status="x")},
        "GET",
        f"?filter={quote(eq_filter(status='x'))}",
    ),
    Scenario("bad token", "ListTasks", {"page_token": "nope"}, "GET", "?page_token=nope"),
]


async def seed(tg: Taskgate) -> None:
    for i in range(3):
        await tg.stub.CreateTask(task_pb2.CreateTaskRequest(task=new_task(created_at=100 + i)))


async def over_grpc(tg: Taskgate, scenario: Scenario) -> tuple[int, Any]:
    method = getattr(tg.stub, scenario.rpc)
    request_class = (
        task_pb2.CreateTaskRequest if scenario.rpc == "CreateTask" else task_pb2.ListTasksRequest
    )
    request = json_format.ParseDict(scenario.request, request_class())
    try:
        response = await method(request)
    except grpc.aio.AioRpcError as error:
        details = [
            value
            for key, value in (error.trailing_metadata() or ())
            if key == "grpc-status-details-bin"
        ]
        from google.rpc import status_pb2

        from taskgate.api import error_pb2

        status = status_pb2.Status.FromString(details[0])
        api_error = error_pb2.Error()
        status.details[0].Unpack(api_error)
        detail = {
            "@type": "type.googleapis.com/api.Error",
            **json_format.MessageToDict(api_error, preserving_proto_field_name=True),
        }
        body = {
            "error": error.details(),
            "code": error.code().value[0],
            "message": error.details(),
            "details": [detail],
        }
        return HTTP_STATUS[error.code()], body
    return 200, json_format.MessageToDict(response, preserving_proto_field_name=True)


async def over_rest(tg: Taskgate, scenario: Scenario) -> tuple[int, Any]:
    async with tg.http.request(
        scenario.http_method,
        tg.tasks_url + scenario.query,
        data=scenario.body,
        headers={"Content-Type": "application/json"},  # D16
    ) as response:
        return response.status, json.loads(await response.read())


def without(document: Any, keys: frozenset[str]) -> Any:
    if isinstance(document, dict):
        return {k: without(v, keys) for k, v in document.items() if k not in keys}
    if isinstance(document, list):
        return [without(v, keys) for v in document]
    return document


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_rest_and_grpc_agree(taskgate: Taskgate, scenario: Scenario) -> None:
    await seed(taskgate)
    grpc_status, grpc_body = await over_grpc(taskgate, scenario)
    rest_status, rest_body = await over_rest(taskgate, scenario)
    assert rest_status == grpc_status
    assert without(rest_body, scenario.ignore) == without(grpc_body, scenario.ignore)
