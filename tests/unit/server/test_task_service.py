"""The servicer alone, on a fake store: store failures become KFP-shaped errors, pages become
tokens, total_size fits an int32. Everything else is covered through the real store."""

from __future__ import annotations

from typing import cast

import grpc
import pytest

from taskgate.api import task_pb2
from taskgate.rpc import CallOptions
from taskgate.server.errors import ServiceError
from taskgate.server.page_tokens import decode_page_token
from taskgate.server.task_service import TaskService
from taskgate.store.errors import StoreError, StoreUnavailableError
from taskgate.store.records import Column, Cursor, NewTask, TaskPage, TaskQuery, TaskRecord
from taskgate.store.task_store import TaskStore
from tests.integration.kfp import new_task

KEY = b"k" * 32
NO_OPTIONS = CallOptions()
RECORD = TaskRecord(
    id="a", namespace="", pipeline_name="p", run_id="r", mlmd_execution_id="1",
    created_at=5, finished_at=0, fingerprint="f",
)  # fmt: skip


class FakeTaskStore:
    """Records queries; answers with a canned page or fails with a canned error."""

    def __init__(self, page: TaskPage | None = None, error: StoreError | None = None) -> None:
        self.page = page or TaskPage(records=[], next_cursor=None, total_size=0)
        self.error = error
        self.queries: list[TaskQuery] = []

    async def create_task(self, new_task: NewTask) -> TaskRecord:
        if self.error:
            raise self.error
        return RECORD

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        self.queries.append(query)
        if self.error:
            raise self.error
        return self.page

    async def token_key(self) -> bytes:
        return KEY


def service(store: FakeTaskStore) -> TaskService:
    return TaskService(cast(TaskStore, store))


@pytest.mark.parametrize(
    ("error", "code", "external"),
    [
        (
            StoreUnavailableError("database unavailable: cannot connect"),
            grpc.StatusCode.UNAVAILABLE,
            "List tasks failed.: the database is unavailable, try again later",
        ),
        (
            StoreError("list_tasks failed: syntax error at or near"),
            grpc.StatusCode.INTERNAL,
            "Internal Server Error",
        ),
    ],
)
async def test_store_failures_are_kfp_shaped(
    error: StoreError, code: grpc.StatusCode, external: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await service(FakeTaskStore(error=error)).ListTasks(task_pb2.ListTasksRequest(), NO_OPTIONS)
    assert caught.value.code == code
    assert caught.value.external == external
    assert "syntax error" not in caught.value.chain  # database text never reaches a client


async def test_a_next_page_becomes_a_signed_token_and_total_size_fits_int32() -> None:
    page = TaskPage(records=[RECORD], next_cursor=Cursor(7, "b"), total_size=2**40)
    store = FakeTaskStore(page=page)
    request = task_pb2.ListTasksRequest(page_size=1, sort_by="created_at desc")
    response = await service(store).ListTasks(request, NO_OPTIONS)
    assert response.total_size == 2**31 - 1
    assert [t.id for t in response.tasks] == ["a"]
    token = decode_page_token(response.next_page_token, KEY)
    assert (token.sort, token.descending, token.cursor) == (Column.CREATED_AT, True, Cursor(7, "b"))
    assert store.queries[0].limit == 1


async def test_create_returns_the_stored_record() -> None:
    request = task_pb2.CreateTaskRequest(task=new_task())
    created = await service(FakeTaskStore()).CreateTask(request, NO_OPTIONS)
    assert created.id == "a"
    assert created.HasField("finished_at")
