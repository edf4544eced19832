"""taskgate's PostgreSQL store: the tasks table through asyncpg, speaking its own dataclasses.

Independent of api/, server/ and gateway/; no protobuf here.
"""

from taskgate.store.embedded import EmbeddedPostgres
from taskgate.store.errors import StoreError, StoreUnavailableError
from taskgate.store.migrate import apply_migrations
from taskgate.store.pool import open_pool, pool_context
from taskgate.store.records import (
    Column,
    Condition,
    Cursor,
    NewTask,
    Op,
    TaskPage,
    TaskQuery,
    TaskRecord,
)
from taskgate.store.task_store import TaskStore

__all__ = [
    "Column",
    "Condition",
    "Cursor",
    "EmbeddedPostgres",
    "NewTask",
    "Op",
    "StoreError",
    "StoreUnavailableError",
    "TaskPage",
    "TaskQuery",
    "TaskRecord",
    "TaskStore",
    "apply_migrations",
    "open_pool",
    "pool_context",
]
