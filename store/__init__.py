"""taskgate's PostgreSQL store: the tasks table through asyncpg, speaking its own dataclasses.

Independent of api/, server/ and gateway/; no protobuf here.
"""

from store.embedded import EmbeddedPostgres
from store.errors import StoreError, StoreUnavailableError
from store.migrate import apply_migrations
from store.pool import open_pool, pool_context
from store.records import Column, Condition, Cursor, NewTask, Op, TaskPage, TaskQuery, TaskRecord
from store.task_store import TaskStore

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
