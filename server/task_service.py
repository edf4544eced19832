"""The TaskService servicer: validate → store → convert. Nothing else.

Handlers take (request, CallOptions) and run inside the call pipeline, so the same code answers
both doors. CreateTaskV1/ListTasksV1 are the names KFP 2.x clients call (decision K1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import cast

from taskgate.api import task_pb2
from taskgate.rpc import CallOptions
from taskgate.server.authz.access import current_caller, require_write, restrict_list
from taskgate.server.converters import record_to_task
from taskgate.server.errors import internal, unavailable
from taskgate.server.list_options import plan_list
from taskgate.server.page_tokens import encode_page_token
from taskgate.server.pipeline import Handler, Method
from taskgate.server.validation import check_create_task
from taskgate.store.errors import StoreError, StoreUnavailableError
from taskgate.store.task_store import TaskStore

log = logging.getLogger(__name__)

SERVICE_NAME = "api.TaskService"
INT32_MAX = 2**31 - 1


class TaskService:
    """KFP's task server (docs/decisions.md K2-K14) on a TaskStore."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def CreateTask(
        self, request: task_pb2.CreateTaskRequest, options: CallOptions
    ) -> task_pb2.Task:
        new_task = check_create_task(request)
        await require_write(new_task.namespace)  # multi-user mode: 403 before anything is written
        with _store_errors("Failed to create a new task.", "Failed to add task to task table"):
            record = await self._store.create_task(new_task)
        return record_to_task(record)

    async def ListTasks(
        self, request: task_pb2.ListTasksRequest, options: CallOptions
    ) -> task_pb2.ListTasksResponse:
        with _store_errors("List tasks failed.", "Failed to read the page token key"):
            key = await self._store.token_key()
        bound = current_caller()
        plan = plan_list(request, key, "" if bound is None else bound[0].binding)
        query = await restrict_list(plan.query)  # multi-user mode: only readable namespaces
        with _store_errors("List tasks failed.", "Failed to list tasks"):
            page = await self._store.list_tasks(query)
        token = ""
        if page.next_cursor is not None:
            token = encode_page_token(plan.next_page_token(page.next_cursor), key)
        return task_pb2.ListTasksResponse(
            tasks=[record_to_task(r) for r in page.records],
            next_page_token=token,
            total_size=min(page.total_size, INT32_MAX),
        )

    def methods(self) -> Mapping[str, Method]:
        """Every RPC of api.TaskService, keyed by full method name."""
        create = Method(_handler(self.CreateTask), task_pb2.CreateTaskRequest, task_pb2.Task)
        list_ = Method(
            _handler(self.ListTasks), task_pb2.ListTasksRequest, task_pb2.ListTasksResponse
        )
        return {
            f"/{SERVICE_NAME}/CreateTask": create,
            f"/{SERVICE_NAME}/CreateTaskV1": create,
            f"/{SERVICE_NAME}/ListTasks": list_,
            f"/{SERVICE_NAME}/ListTasksV1": list_,
        }


def _handler(method: object) -> Handler:
    # The pipeline passes the request as a Message; each handler knows its own type.
    return cast(Handler, method)


@contextmanager
def _store_errors(wrap: str, cause: str) -> Iterator[None]:
    """Turn store failures into KFP-shaped errors: plain UNAVAILABLE, or INTERNAL with no text."""
    try:
        yield
    except StoreUnavailableError:
        raise unavailable(f"{wrap}: the database is unavailable, try again later") from None
    except StoreError as error:
        log.error("%s: %s", wrap, error, exc_info=error)
        raise internal(f"{cause}: database error").wrap(wrap) from None
