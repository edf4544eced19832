"""KFP's REST API as curl sees it (docs/decisions.md K15-K19, D1-D15): exact statuses and JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.kfp import eq_filter
from tests.integration.servers import Taskgate

TASK = {
    "namespace": "ns1",
    "pipelineName": "namespace/ns1/pipeline/p1",
    "runId": "run-1",
    "mlmdExecutionID": "42",
    "created_at": "2016-05-10T10:19:13.750Z",
    "finished_at": "2016-05-10T10:21:03Z",
    "fingerprint": "fp-abc",
}


async def post(tg: Taskgate, body: bytes | str, **headers: str) -> tuple[int, Any, dict[str, str]]:
    data = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": "application/json", **headers}  # D16: JSON routes want JSON
    async with tg.http.post(tg.tasks_url, data=data, headers=headers) as response:
        return response.status, json.loads(await response.read()), dict(response.headers)


async def get(tg: Taskgate, query: str = "") -> tuple[int, Any]:
    async with tg.http.get(f"{tg.tasks_url}{query}") as response:
        return response.status, json.loads(await response.read())


async def test_create_task_answers_kfp_json_byte_for_byte(taskgate: Taskgate) -> None:
    async with taskgate.http.post(taskgate.tasks_url, json=TASK) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Grpc-Metadata-Content-Type"] == "application/grpc"
        raw = await response.text()
    task_id = json.loads(raw)["id"]
    assert raw == (
        f'{{"id":"{task_id}","namespace":"ns1","pipelineName":"namespace/ns1/pipeline/p1",'
        '"runId":"run-1","mlmdExecutionID":"42","created_at":"2016-05-10T10:19:13Z",'
        '"finished_at":"2016-05-10T10:21:03Z","fingerprint":"fp-abc"}'
    )


async def test_json_names_offsets_and_missing_finished_at(taskgate: Taskgate) -> None:
    body = {k: v for k, v in TASK.items() if k not in ("created_at", "finished_at", "namespace")}
    body["createdAt"] = "2024-01-02T05:04:05.120+02:00"
    status, task, _ = await post(
        taskgate, json.dumps(body), **{"Content-Type": "application/merge-patch+json"}
    )
    assert status == 200
    assert task["created_at"] == "2024-01-02T03:04:05Z"
    assert task["finished_at"] == "1970-01-01T00:00:00Z"
    assert "namespace" not in task


async def test_list_shapes(taskgate: Taskgate) -> None:
    assert await get(taskgate) == (200, {})
    first = (await post(taskgate, json.dumps(TASK)))[1]
    second = (await post(taskgate, json.dumps({**TASK, "created_at": "2016-05-10T10:19:14Z"})))[1]
    status, page = await get(taskgate, "?page_size=1")
    assert status == 200
    assert list(page) == ["tasks", "next_page_token", "total_size"]
    assert page["tasks"] == [first]
    assert page["total_size"] == 2
    status, last = await get(taskgate, f"?pageSize=1&pageToken={page['next_page_token']}")
    assert (status, last) == (200, {"tasks": [second], "total_size": 2})


async def test_driver_style_query_with_encoded_filter(taskgate: Taskgate) -> None:
    created = (await post(taskgate, json.dumps(TASK)))[1]
    filter_text = eq_filter(
        fingerprint="fp-abc", pipelineName=TASK["pipelineName"], namespace="ns1"
    )
    once = quote(filter_text, safe="")
    twice = quote(once, safe="")  # what KFP's UI sends (decision D7)
    for encoded in (once, twice):
        status, page = await get(
            taskgate, f"?page_size=1&sort_by=created_at%20desc&filter={encoded}"
        )
        assert (status, page) == (200, {"tasks": [created], "total_size": 1})


async def test_resource_reference_key_by_name_and_number(taskgate: Taskgate) -> None:
    created = (await post(taskgate, json.dumps(TASK)))[1]
    pipeline = quote(TASK["pipelineName"], safe="")
    for kind in ("PIPELINE", "3"):
        query = f"?resource_reference_key.type={kind}&resource_reference_key.id={pipeline}"
        assert await get(taskgate, query) == (200, {"tasks": [created], "total_size": 1})
    status, body = await get(
        taskgate, "?resourceReferenceKey.type=NAMESPACE&resourceReferenceKey.id=nope"
    )
    assert (status, body) == (200, {})


def kfp_error_body(chain: str, external: str, code: int = 3) -> dict[str, Any]:
    return {
        "error": chain,
        "code": code,
        "message": chain,
        "details": [
            {
                "@type": "type.googleapis.com/api.Error",
                "error_message": external,
                "error_details": chain,
            }
        ],
    }


@pytest.mark.parametrize(
    ("body", "external"),
    [
        ("", "Invalid task: must specify PipelineName"),
        ("null", "Invalid task: must specify PipelineName"),
        (
            '{"task": {"pipelineName": "p"}}',
            "Invalid task: must specify PipelineName",
        ),  # unknown key ignored
        ('{"id": "x", "pipelineName": "p8"}', "Invalid task: Id should not be set"),
        ('{"pipelineName": "p", "bogus": 1}', "Invalid task: must specify RunId"),
    ],
)
async def test_service_errors_have_kfp_shape(taskgate: Taskgate, body: str, external: str) -> None:
    status, error, headers = await post(taskgate, body)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert error == kfp_error_body(
        f"Validate create task request failed.: Invalid input error: {external}", external
    )
    assert list(error) == ["error", "code", "message", "details"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"pipelineName": "p4",', "JSON"),
        ("hello", "JSON"),
        ('{"pipelineName": "p6", "runId": 5}', "runId"),
        ('{"pipelineName": "p7", "created_at": "yesterday"}', "created_at"),
        ("[1, 2]", "object"),
        (b'{"pipelineName": "\xff"}', "UTF-8"),
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    taskgate: Taskgate, body: str | bytes, fragment: str
) -> None:
    status, error, _ = await post(taskgate, body)
    assert status == 400
    assert error["code"] == 3
    assert error["error"] == error["message"]
    assert fragment.lower() in error["message"].lower()
    assert "Traceback" not in error["message"]
    assert "details" not in error
    assert await get(taskgate) == (200, {})  # nothing was written


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("?page_size=abc", "page_size"),
        ("?page_size=99999999999", "page_size"),
        ("?resource_reference_key.type=NOPE", "resource_reference_key.type"),
        ("?resource_reference_key.type=%22PIPELINE%22", "resource_reference_key.type"),
    ],
)
async def test_bad_query_values_are_400_naming_the_parameter(
    taskgate: Taskgate, query: str, fragment: str
) -> None:
    status, error = await get(taskgate, query)
    assert status == 400
    assert error["code"] == 3
    assert fragment in error["message"]


async def test_service_error_catalogue_over_rest(taskgate: Taskgate) -> None:
    status, error = await get(taskgate, "?page_size=-3")
    external = "The page size should be greater than 0. Got '-3'"
    assert (status, error) == (
        400,
        kfp_error_body(f"Failed to create list options: Invalid input error: {external}", external),
    )
    status, error = await get(taskgate, "?page_token=random%20nonsense")
    assert status == 400
    assert error["details"][0]["error_message"] == "Invalid page token."


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_405_json_with_allow(taskgate: Taskgate, method: str) -> None:
    async with taskgate.http.request(method, taskgate.tasks_url, data="{}") as response:
        assert response.status == 405
        assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        body = json.loads(await response.read())
    assert body["code"] == 12 or body["code"] == 5 or isinstance(body["code"], int)
    assert body["error"] == body["message"]


@pytest.mark.parametrize("path", ["/apis/v1alpha1/nope", "/apis/v1alpha1/tasks/x", "/foo"])
async def test_unknown_path_is_404_json(taskgate: Taskgate, path: str) -> None:
    async with taskgate.http.get(f"{taskgate.base_url}{path}") as response:
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(await response.read())
    assert body["code"] == 5


async def test_kubeflow_userid_header_is_accepted(taskgate: Taskgate) -> None:
    status, _, _ = await post(
        taskgate, json.dumps(TASK), **{"kubeflow-userid": "alice@example.com"}
    )
    assert status == 200


async def test_long_query_strings_reach_the_service(taskgate: Taskgate) -> None:
    """Go's net/http takes 1 MiB of request line; a 20 kB page token is the service's 400."""
    status, error = await get(taskgate, "?page_token=" + "A" * 20_000)
    assert status == 400
    assert error["details"][0]["error_message"] == "Invalid page token."


async def test_an_overlong_request_line_is_a_414_without_a_traceback(
    taskgate: Taskgate, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", taskgate.server.http_port)
    writer.write(b"GET /apis/v1alpha1/tasks?" + b"A" * (2 * 1024 * 1024) + b" HTTP/1.1\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"414"  # T52: the JSON error shape, no echo of the line
    assert not [r for r in caplog.records if r.exc_info]


async def test_grpc_timeout_header_is_the_deadline(taskgate: Taskgate) -> None:
    async with taskgate.http.get(taskgate.tasks_url, headers={"Grpc-Timeout": "1n"}) as response:
        assert response.status == 504
        body = json.loads(await response.read())
    assert body["code"] == 4
    async with taskgate.http.get(taskgate.tasks_url, headers={"Grpc-Timeout": "soon"}) as response:
        assert response.status == 400
        assert "Grpc-Timeout" in json.loads(await response.read())["message"]
