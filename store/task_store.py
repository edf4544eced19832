"""TaskStore: create and list tasks, and the shared page-token key, on an asyncpg pool.

Picks a statement from store.queries, runs it, turns rows into TaskRecords and translates
asyncpg errors into store errors in one place (`_translate_errors`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from taskgate import metrics, tracing
from taskgate.logs import RateLimitedLog
from taskgate.store import queries
from taskgate.store.errors import StoreError, StoreUnavailableError
from taskgate.store.group_commit import GroupCommit
from taskgate.store.pool import ACQUIRE_TIMEOUT_SECONDS, reason
from taskgate.store.records import Cursor, NewTask, TaskPage, TaskQuery, TaskRecord

log = logging.getLogger(__name__)

PING_TIMEOUT_SECONDS = 2.0
SIGNING_KEY_NAME = "page_token_key"
TOKEN_KEY_BYTES = 32
#: Group commit of concurrent CreateTask calls (docs/decisions.md P34): rows per INSERT, and
#: INSERT batches running at once (each on its own pooled connection).
MAX_BATCH_ROWS = 64
MAX_BATCHES_IN_FLIGHT = 1

# Losing the database, as opposed to a bad statement: the caller may retry elsewhere or later.
# Every client-side error of asyncpg's is of this kind (a lost or closed connection or pool, a
# connection left mid-cancellation, its protocol state machine during a server shutdown: "cannot
# switch to state 12"), except DataError: a parameter it cannot encode, which is a bug here.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: connection failures
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now, query canceled
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    asyncpg.InternalClientError,  # its protocol's state machine (ProtocolError included)
    asyncpg.InterfaceError,  # closed pool or connection, lost mid-operation (DataError aside)
)

#: One line per kind of database failure every 10 s, however many calls fail.
_unavailable_log = RateLimitedLog(log)


@asynccontextmanager
async def _translate_errors(action: str) -> AsyncIterator[None]:
    """Raise StoreUnavailableError / StoreError for anything asyncpg or the socket raises."""
    try:
        yield
    except StoreError:
        raise
    except asyncpg.DataError as exc:
        raise StoreError(f"{action} failed: {type(exc).__name__}") from exc
    except _UNAVAILABLE_ERRORS as exc:
        _unavailable_log.warning(
            type(exc).__name__, "database unavailable (%s): %s", action, reason(exc)
        )
        raise StoreUnavailableError("database unavailable") from exc
    except asyncpg.PostgresError as exc:
        raise StoreError(f"{action} failed: SQLSTATE {exc.sqlstate}") from exc


def _record_from_row(row: asyncpg.Record) -> TaskRecord:
    return TaskRecord(
        id=str(row["id"]),
        namespace=str(row["namespace"]),
        pipeline_name=str(row["pipeline_name"]),
        run_id=str(row["run_id"]),
        mlmd_execution_id=str(row["mlmd_execution_id"]),
        created_at=int(row["created_at"]),
        finished_at=int(row["finished_at"]),
        fingerprint=str(row["fingerprint"]),
    )


class TaskStore:
    """The tasks table behind one asyncpg pool. Keeps nothing another replica would need."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._token_key: bytes | None = None
        self._creates = GroupCommit(
            self._insert_batch, max_batch=MAX_BATCH_ROWS, max_in_flight=MAX_BATCHES_IN_FLIGHT
        )

    async def create_task(self, new_task: NewTask) -> TaskRecord:
        """Insert a task with a fresh lowercase UUIDv4 id; committed before this returns.

        Concurrent calls are committed together (group commit, P34): while an INSERT is in
        flight the next calls queue, and the next INSERT writes them all in one statement;
        each caller gets its own outcome."""
        return await self._creates.submit((str(uuid.uuid4()), new_task))

    async def _insert_batch(
        self, batch: list[tuple[str, NewTask]]
    ) -> list[TaskRecord | BaseException]:
        """One outcome per (id, task), in order. One row: the single-row INSERT. More: one
        multi-row INSERT; if PostgreSQL rejects it (a value, a constraint: nothing of it is
        committed), each row again on its own, so only a bad row's caller gets its error. A
        lost database fails every caller with StoreUnavailableError."""
        if len(batch) == 1:
            return await self._insert_each(batch)
        rows: list[asyncpg.Record] | None = None
        try:
            async with self._connection("create_task") as connection:
                with tracing.database_span("INSERT", "tasks"):  # P13: a span per statement
                    rows = await connection.fetch(
                        queries.INSERT_TASKS,
                        [task_id for task_id, _ in batch],
                        [task.namespace for _, task in batch],
                        [task.pipeline_name for _, task in batch],
                        [task.run_id for _, task in batch],
                        [task.mlmd_execution_id for _, task in batch],
                        [task.created_at for _, task in batch],
                        [task.finished_at for _, task in batch],
                        [task.fingerprint for _, task in batch],
                    )
        except StoreError as error:
            if rows is None and isinstance(error, StoreUnavailableError):
                return [_unavailable(error) for _ in batch]
            if rows is None:  # rejected as a whole, so nothing of it is committed
                return await self._insert_each(batch)
            # else committed: only releasing the connection failed
        by_id = {str(row["id"]): row for row in rows or ()}
        return [
            _record_from_row(by_id[task_id])
            if task_id in by_id
            else StoreError("create_task failed: INSERT returned no row")
            for task_id, _ in batch
        ]

    async def _insert_each(
        self, batch: list[tuple[str, NewTask]]
    ) -> list[TaskRecord | BaseException]:
        """Each row by the single-row INSERT; once the database is lost, the rest are not tried
        (each would wait for a connection in vain)."""
        outcomes: list[TaskRecord | BaseException] = []
        lost: StoreUnavailableError | None = None
        for task_id, new_task in batch:
            if lost is not None:
                outcomes.append(_unavailable(lost))
                continue
            try:
                outcomes.append(await self._insert_one(task_id, new_task))
            except StoreUnavailableError as error:
                lost = error
                outcomes.append(error)
            except StoreError as error:
                outcomes.append(error)
        return outcomes

    async def _insert_one(self, task_id: str, new_task: NewTask) -> TaskRecord:
        async with self._connection("create_task") as connection:
            with tracing.database_span("INSERT", "tasks"):  # P13: a span per statement
                row = await connection.fetchrow(
                    queries.INSERT_TASK,
                    task_id,
                    new_task.namespace,
                    new_task.pipeline_name,
                    new_task.run_id,
                    new_task.mlmd_execution_id,
                    new_task.created_at,
                    new_task.finished_at,
                    new_task.fingerprint,
                )
        if row is None:
            raise StoreError("create_task failed: INSERT returned no row")
        return _record_from_row(row)

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """One page and the exact match count, read by one statement (so in one snapshot, in
        one round trip: no BEGIN/COMMIT)."""
        statements = queries.task_page_statements(query)
        async with self._connection("list_tasks") as connection:
            with tracing.database_span("SELECT", "tasks"):
                rows = await connection.fetch(statements.page_sql, *statements.rows_args)
        total_size = rows[0]["total_size"] if rows else 0
        records = [_record_from_row(row) for row in rows if row["id"] is not None]
        next_cursor = None
        if len(records) > query.limit:
            first_of_next = records[query.limit]
            next_cursor = Cursor(first_of_next.sort_value(query.sort), first_of_next.id)
            del records[query.limit :]
        return TaskPage(records=records, next_cursor=next_cursor, total_size=int(total_size))

    async def token_key(self) -> bytes:
        """The random 32-byte page-token key: created once in the database, shared by every
        replica, read once per TaskStore and cached."""
        if self._token_key is None:
            async with self._connection("token_key") as connection:
                candidate = secrets.token_bytes(TOKEN_KEY_BYTES)
                with tracing.database_span("INSERT", "taskgate_secrets"):
                    await connection.execute(
                        queries.INSERT_KEY_IF_ABSENT, SIGNING_KEY_NAME, candidate
                    )
                with tracing.database_span("SELECT", "taskgate_secrets"):
                    key = await connection.fetchval(queries.SELECT_KEY, SIGNING_KEY_NAME)
            if not isinstance(key, bytes) or len(key) != TOKEN_KEY_BYTES:
                raise StoreError("token_key failed: stored key is not 32 bytes")
            self._token_key = key
        return self._token_key

    @asynccontextmanager
    async def _connection(
        self, action: str, acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS
    ) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection, waited for (and released) within `acquire_timeout`; errors
        translated, those of the release included. Metrics (P10): the wait, the pool's size
        and use, and errors by kind."""
        pool = self._pool
        waited = time.perf_counter()
        try:
            async with (
                _translate_errors(action),
                pool.acquire(timeout=acquire_timeout) as connection,
            ):
                metrics.POOL_WAIT.observe(time.perf_counter() - waited)
                _pool_gauges(pool)
                try:
                    yield connection
                except TimeoutError:
                    # A statement timed out: the server is hung or overloaded. Waiting for
                    # asyncpg to cancel it would keep the caller waiting longer still; drop the
                    # connection.
                    connection.terminate()
                    raise
        except StoreError as error:
            metrics.DB_ERRORS.labels(type(error).__name__).inc()
            raise
        finally:
            _pool_gauges(pool)

    async def ping(self) -> bool:
        """True when the database answers `SELECT 1` within PING_TIMEOUT_SECONDS."""
        try:
            async with (
                asyncio.timeout(PING_TIMEOUT_SECONDS),
                self._connection("ping", PING_TIMEOUT_SECONDS) as connection,
            ):
                answer = await connection.fetchval(queries.PING, timeout=PING_TIMEOUT_SECONDS)
            return bool(answer == 1)
        except StoreError:
            log.debug("database ping failed", exc_info=True)
            return False
        except TimeoutError:
            return False


def _unavailable(error: StoreUnavailableError) -> StoreUnavailableError:
    """A caller's own copy of a batch's StoreUnavailableError (each raises and chains its own)."""
    copy = StoreUnavailableError(*error.args)
    copy.__cause__ = error.__cause__
    return copy


def _pool_gauges(pool: asyncpg.Pool) -> None:
    size = pool.get_size()
    metrics.POOL_SIZE.set(size)
    metrics.POOL_IN_USE.set(size - pool.get_idle_size())
