"""asyncpg's client-side errors are a lost database, not a bug: the store raises
StoreUnavailableError and the service answers UNAVAILABLE, with no Python class name in it.

During a database shutdown asyncpg raises InternalClientError ("cannot switch to state 12"),
which came out as INTERNAL with an ERROR traceback (issue 9). The errors are constructed
directly and raised by a fake pool, when a connection is acquired or by the statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
import grpc
import pytest

from taskgate.api import task_pb2
from taskgate.rpc import CallOptions
from taskgate.server.errors import ServiceError
from taskgate.server.task_service import TaskService
from taskgate.store.errors import StoreError, StoreUnavailableError
from taskgate.store.records import NewTask, TaskQuery
from taskgate.store.task_store import TaskStore
from tests.integration.kfp import new_task

CLIENT_ERRORS = [
    asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (None) is in progress"
    ),
    asyncpg.exceptions._base.ProtocolError("unexpected message"),  # an InternalClientError
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
]
NEW_TASK = NewTask(
    namespace="ns1", pipeline_name="p", run_id="r", mlmd_execution_id="1",
    created_at=5, finished_at=0, fingerprint="f",
)  # fmt: skip


class _FailingConnection:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def fetchrow(self, *args: object, **kwargs: object) -> object:
        raise self.error

    async def fetch(self, *args: object, **kwargs: object) -> object:
        raise self.error

    async def fetchval(self, *args: object, **kwargs: object) -> object:
        raise self.error

    async def execute(self, *args: object, **kwargs: object) -> object:
        raise self.error

    def terminate(self) -> None:
        pass


class _FakePool(_FailingConnection):
    """Raises `error` when a connection is acquired (`on_acquire`) or from its statements
    (the pool's own statement methods too, as asyncpg's do)."""

    def __init__(self, error: BaseException, on_acquire: bool) -> None:
        super().__init__(error)
        self.on_acquire = on_acquire

    def get_size(self) -> int:
        return 1

    def get_idle_size(self) -> int:
        return 0

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[_FailingConnection]:
        if self.on_acquire:
            raise self.error
        yield _FailingConnection(self.error)

    def acquire(self, timeout: float | None = None) -> object:
        return self._acquire()


def _store(error: BaseException, on_acquire: bool) -> TaskStore:
    return TaskStore(cast(asyncpg.Pool, _FakePool(error, on_acquire)))


@pytest.mark.parametrize("on_acquire", [False, True], ids=["statement", "acquire"])
@pytest.mark.parametrize("error", CLIENT_ERRORS, ids=lambda e: type(e).__name__)
async def test_client_errors_become_store_unavailable(error: Exception, on_acquire: bool) -> None:
    store = _store(error, on_acquire)

    with pytest.raises(StoreUnavailableError) as created:
        await store.create_task(NEW_TASK)
    with pytest.raises(StoreUnavailableError):
        await store.list_tasks(TaskQuery())
    assert not await store.ping()
    assert created.value.__cause__ is error


@pytest.mark.parametrize("error", CLIENT_ERRORS, ids=lambda e: type(e).__name__)
async def test_client_errors_reach_callers_as_unavailable(error: Exception) -> None:
    service = TaskService(_store(error, on_acquire=False))

    with pytest.raises(ServiceError) as caught:
        await service.CreateTask(task_pb2.CreateTaskRequest(task=new_task()), CallOptions())

    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "try again later" in caught.value.external
    assert type(error).__name__ not in caught.value.external
    assert "asyncpg" not in caught.value.external


async def test_a_parameter_asyncpg_cannot_encode_stays_a_bug() -> None:
    """DataError is the one client-side error that is ours (INTERNAL), not the database's."""
    with pytest.raises(StoreError) as caught:
        await _store(asyncpg.DataError("invalid input for query argument $6"), False).create_task(
            NEW_TASK
        )
    assert not isinstance(caught.value, StoreUnavailableError)
