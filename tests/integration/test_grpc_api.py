"""api.TaskService over gRPC, end to end on PostgreSQL (docs/decisions.md K1-K14, D1-D15)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from taskgate.api import resource_reference_pb2, task_pb2, task_pb2_grpc
from tests.integration.kfp import eq_filter, kfp_error, new_task
from tests.integration.servers import Taskgate

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RT = resource_reference_pb2.ResourceType


async def create(tg: Taskgate, **fields: object) -> task_pb2.Task:
    return await tg.stub.CreateTask(task_pb2.CreateTaskRequest(task=new_task(**fields)))


async def list_tasks(tg: Taskgate, **fields: object) -> task_pb2.ListTasksResponse:
    request = task_pb2.ListTasksRequest(**fields)  # type: ignore[arg-type]
    return await tg.stub.ListTasks(request)


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_create_task_echoes_the_task_with_a_new_id(taskgate: Taskgate) -> None:
    sent = new_task(namespace="", finished_at=None)
    sent.created_at.nanos = 999_000_000
    created = await taskgate.stub.CreateTask(task_pb2.CreateTaskRequest(task=sent))
    assert UUID4.match(created.id)
    assert created.pipelineName == "pipeline/p1"
    assert created.namespace == ""
    assert created.created_at.seconds == 1_700_000_000
    assert created.created_at.nanos == 0  # whole seconds, as KFP stores them
    assert created.HasField("finished_at")  # epoch when not supplied, as KFP answers
    assert created.finished_at.seconds == 0
    listed = await list_tasks(taskgate)
    assert list(listed.tasks) == [created]
    assert listed.total_size == 1
    assert listed.next_page_token == ""


async def test_duplicates_are_allowed(taskgate: Taskgate) -> None:
    first, second = await create(taskgate), await create(taskgate)
    assert first.id != second.id
    assert (await list_tasks(taskgate)).total_size == 2


async def test_v1_aliases_behave_the_same(taskgate: Taskgate) -> None:
    create_v1 = taskgate.channel.unary_unary(
        "/api.TaskService/CreateTaskV1",
        request_serializer=task_pb2.CreateTaskRequest.SerializeToString,
        response_deserializer=task_pb2.Task.FromString,
    )
    list_v1 = taskgate.channel.unary_unary(
        "/api.TaskService/ListTasksV1",
        request_serializer=task_pb2.ListTasksRequest.SerializeToString,
        response_deserializer=task_pb2.ListTasksResponse.FromString,
    )
    created = await create_v1(task_pb2.CreateTaskRequest(task=new_task()))
    listed = await list_v1(task_pb2.ListTasksRequest())
    assert list(listed.tasks) == [created]
    error = await rpc_error(create_v1(task_pb2.CreateTaskRequest()))
    assert error.details() == (
        "Validate create task request failed.: Invalid input error: Invalid task: must specify "
        "PipelineName"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "x"}, "Invalid task: Id should not be set"),
        ({"pipelineName": ""}, "Invalid task: must specify PipelineName"),
        ({"runId": ""}, "Invalid task: must specify RunId"),
        ({"mlmdExecutionID": ""}, "Invalid task: must specify MlmdExecutionID"),
        ({"fingerprint": ""}, "Invalid task: must specify FingerPrint"),
        ({"created_at": None}, "Invalid task: must specify CreatedAt"),
        ({"fingerprint": "f" * 256}, "Invalid task: fingerprint must be at most 255 characters"),
        ({"namespace": "a\x00"}, "Invalid task: namespace must not contain NUL characters"),
    ],
)
async def test_create_task_errors(
    taskgate: Taskgate, fields: dict[str, object], message: str
) -> None:
    error = await rpc_error(create(taskgate, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    chain = f"Validate create task request failed.: Invalid input error: {message}"
    assert error.details() == chain
    detail = kfp_error(error)
    assert detail.error_message == message
    assert detail.error_details == chain
    assert (await list_tasks(taskgate)).total_size == 0


async def test_create_task_without_task_does_not_crash(taskgate: Taskgate) -> None:
    error = await rpc_error(taskgate.stub.CreateTask(task_pb2.CreateTaskRequest()))
    assert kfp_error(error).error_message == "Invalid task: must specify PipelineName"
    await create(taskgate)  # and the server keeps serving


async def test_driver_cache_lookup_picks_newest_then_largest_id(taskgate: Taskgate) -> None:
    """KFP's driver: three EQUALS predicates, created_at desc, page size 1 (docs/decisions.md K21)."""
    for created_at in (100, 300, 300, 300, 200):
        await create(taskgate, created_at=created_at, fingerprint="abc", namespace="")
    await create(taskgate, created_at=999, fingerprint="abc", namespace="other")
    await create(taskgate, created_at=999, fingerprint="abd", namespace="")
    same_second = sorted(
        [
            t
            for t in (await list_tasks(taskgate, page_size=50)).tasks
            if t.created_at.seconds == 300
        ],
        key=lambda t: t.id,
    )
    filter_text = eq_filter(fingerprint="abc", pipelineName="pipeline/p1", namespace="")
    hit = await list_tasks(taskgate, filter=filter_text, sort_by="created_at desc", page_size=1)
    assert [t.id for t in hit.tasks] == [same_second[-1].id]
    assert hit.total_size == 5
    assert hit.next_page_token


SORT_KEYS: dict[str, Callable[[task_pb2.Task], Any]] = {
    "created_at": lambda t: t.created_at.seconds,
    "finished_at": lambda t: t.finished_at.seconds,
    "id": lambda t: t.id,
    "pipelinename": lambda t: t.pipelineName,
    "runid": lambda t: t.runId,
    "mlmdexecutionid": lambda t: t.mlmdExecutionID,
    "fingerprint": lambda t: t.fingerprint,
    "namespace": lambda t: t.namespace,
}


def expected_order(tasks: list[task_pb2.Task], sort_by: str) -> list[task_pb2.Task]:
    """KFP's order: the sort field, then the id, both in the sort direction (byte order)."""
    name, _, direction = sort_by.lower().partition(" ")
    key = SORT_KEYS[name]
    return sorted(tasks, key=lambda t: (key(t), t.id), reverse=direction == "desc")


@pytest.mark.parametrize(
    "sort_by",
    [
        "created_at",
        "id desc",
        "pipelineName",
        "runId desc",
        "mlmdExecutionID",
        "fingerprint desc",
        "namespace",
        "finished_at desc",
    ],
)
async def test_paging_by_every_sort_field_loses_and_repeats_nothing(
    taskgate: Taskgate, sort_by: str
) -> None:
    created = await asyncio.gather(
        *(
            create(
                taskgate,
                created_at=i % 7,
                finished_at=i % 3,
                runId=f"r{i % 4}",
                pipelineName=f"pipeline/p{i % 5}",
                mlmdExecutionID=str(i % 6),
                fingerprint=f"f{i % 2}",
                namespace=f"ns{i % 3}",
            )
            for i in range(45)
        )
    )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await list_tasks(
            taskgate, page_size=10, sort_by=sort_by if not token else "", page_token=token
        )
        assert page.total_size == 45
        seen += [t.id for t in page.tasks]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 5
    assert seen == [t.id for t in expected_order(created, sort_by)]


@pytest.mark.parametrize(
    ("fields", "chain"),
    [
        (
            {"sort_by": "created_at descending"},
            'Failed to create list options: Invalid input error: Received invalid sort by format "created_at descending". Supported format: "field_name", "field_name desc", or "field_name asc"',
        ),
        (
            {"sort_by": "foo"},
            'Failed to create list options: Invalid input error: Invalid sorting field: "foo" on listable type Task',
        ),
        (
            {"page_size": -3},
            "Failed to create list options: Invalid input error: The page size should be greater than 0. Got '-3'",
        ),
        (
            {"filter": "lkjlkjlkj"},
            'Failed to create list options: Invalid input error: failed to parse valid filter from "lkjlkjlkj": invalid JSON at character 1: Expecting value',
        ),
        (
            {"filter": eq_filter(status="x")},
            'Failed to create list options: Invalid input error: no support for filtering on unrecognized field "status"',
        ),
        (
            {
                "resource_reference_key": resource_reference_pb2.ResourceKey(
                    type=RT.EXPERIMENT, id="e"
                )
            },
            "Validating filter failed.: Invalid input error: Unsupported resource type for tasks: EXPERIMENT",
        ),
        (
            {"resource_reference_key": resource_reference_pb2.ResourceKey(id="x")},
            "Validating filter failed.: Unrecognized resource reference type.: Invalid input error: Unsupported resource type: UNKNOWN_RESOURCE_TYPE",
        ),
    ],
)
async def test_list_tasks_error_catalogue(
    taskgate: Taskgate, fields: dict[str, object], chain: str
) -> None:
    error = await rpc_error(list_tasks(taskgate, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == chain
    assert kfp_error(error).error_details == chain


async def test_forged_and_corrupt_tokens_are_invalid(taskgate: Taskgate) -> None:
    for _ in range(3):
        await create(taskgate)
    token = (await list_tasks(taskgate, page_size=1)).next_page_token
    flipped = token[:10] + ("B" if token[10] == "A" else "A") + token[11:]  # always a change
    for forged in ("random nonsense", token[:-2], flipped, "eyJ4IjoxfQ"):
        error = await rpc_error(list_tasks(taskgate, page_token=forged))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert kfp_error(error).error_message == "Invalid page token."
    assert len((await list_tasks(taskgate, page_token=token)).tasks) == 2


async def test_token_survives_a_restart(taskgate: Taskgate, database_url: str) -> None:
    from taskgate.server.lifecycle import serving
    from tests.integration.servers import serve_settings

    for _ in range(3):
        await create(taskgate)
    token = (await list_tasks(taskgate, page_size=2)).next_page_token
    async with (
        serving(serve_settings(database_url)) as other,
        grpc.aio.insecure_channel(f"127.0.0.1:{other.grpc_port}") as channel,
    ):
        stub = task_pb2_grpc.TaskServiceStub(channel)
        page = await stub.ListTasks(task_pb2.ListTasksRequest(page_token=token))
    assert len(page.tasks) == 1
    assert page.total_size == 3


async def test_filters_and_resource_keys(taskgate: Taskgate) -> None:
    await create(taskgate, pipelineName="pipeline/a", namespace="ns1", created_at=10)
    await create(taskgate, pipelineName="pipeline/b", namespace="ns2", created_at=20)
    await create(taskgate, pipelineName="pipeline/a_b%", namespace="ns2", created_at=30)
    by_pipeline = await list_tasks(
        taskgate,
        resource_reference_key=resource_reference_pb2.ResourceKey(
            type=RT.PIPELINE, id="pipeline/a"
        ),
    )
    assert [t.pipelineName for t in by_pipeline.tasks] == ["pipeline/a"]
    by_namespace = await list_tasks(
        taskgate,
        resource_reference_key=resource_reference_pb2.ResourceKey(type=RT.NAMESPACE, id="ns2"),
    )
    assert by_namespace.total_size == 2
    substring = json.dumps(
        {"predicates": [{"op": "IS_SUBSTRING", "key": "pipelineName", "stringValue": "_b%"}]}
    )
    assert [t.pipelineName for t in (await list_tasks(taskgate, filter=substring)).tasks] == [
        "pipeline/a_b%"
    ]
    newer = json.dumps(
        {
            "predicates": [
                {
                    "op": "GREATER_THAN_EQUALS",
                    "key": "created_at",
                    "timestampValue": "1970-01-01T00:00:20Z",
                }
            ]
        }
    )
    assert (await list_tasks(taskgate, filter=newer)).total_size == 2
    empty_in = json.dumps(
        {"predicates": [{"op": "IN", "key": "namespace", "stringValues": {"values": []}}]}
    )
    assert (await list_tasks(taskgate, filter=empty_in)) == task_pb2.ListTasksResponse()


async def test_numeric_filter_resent_with_its_token(taskgate: Taskgate) -> None:
    for i in range(3):
        await create(taskgate, created_at=i)
    newer = json.dumps(
        {"predicates": [{"op": "GREATER_THAN", "key": "created_at", "longValue": "0"}]}
    )
    first = await list_tasks(taskgate, filter=newer, page_size=1)
    second = await list_tasks(taskgate, filter=newer, page_size=1, page_token=first.next_page_token)
    assert [t.created_at.seconds for t in (*first.tasks, *second.tasks)] == [1, 2]
    other = json.dumps(
        {"predicates": [{"op": "GREATER_THAN", "key": "created_at", "longValue": "1"}]}
    )
    error = await rpc_error(list_tasks(taskgate, filter=other, page_token=first.next_page_token))
    assert kfp_error(error).error_message.startswith("page token does not match")


async def test_page_size_defaults_and_clamps(taskgate: Taskgate) -> None:
    await asyncio.gather(*(create(taskgate) for _ in range(205)))
    assert len((await list_tasks(taskgate)).tasks) == 20
    page = await list_tasks(taskgate, page_size=1000)
    assert len(page.tasks) == 200
    assert page.total_size == 205


@pytest.mark.parametrize(
    "fields",
    [
        {"sort_by": "x " * 20_000},
        {"filter": "[" * 50_000},
        {"filter": '{"predicates":[{"op":"EQUALS","key":"' + "k" * 40_000 + '"}]}'},
    ],
    ids=["long sort_by", "deep filter", "long filter key"],
)
async def test_huge_inputs_are_invalid_argument_not_broken_calls(
    taskgate: Taskgate, fields: dict[str, object]
) -> None:
    error = await rpc_error(list_tasks(taskgate, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.details() or "") < 1_200
    long_name = new_task(pipelineName="namespace/" + "n" * 30_000)
    error = await rpc_error(taskgate.stub.CreateTask(task_pb2.CreateTaskRequest(task=long_name)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
