"""Open the asyncpg pool; a database that cannot be reached becomes StoreUnavailableError.

Owns connection settings only; statements live in store.queries.
"""

from __future__ import annotations

import logging
from asyncio import timeout as asyncio_timeout
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import asyncpg

from taskgate.logs import RateLimitedLog
from taskgate.store.errors import StoreUnavailableError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
#: A statement running longer than this raises TimeoutError (StoreUnavailableError in
#: TaskStore): a hung database must not hang callers. TaskService's statements take
#: milliseconds; migrations have their own, longer timeout.
COMMAND_TIMEOUT_SECONDS = 5.0
#: Waiting for a pooled connection (connecting one included) longer than this raises
#: TimeoutError (StoreUnavailableError): callers queue behind a hung database for no longer.
#: Releasing the connection afterwards gets the same budget.
ACQUIRE_TIMEOUT_SECONDS = 3.0
CLOSE_TIMEOUT_SECONDS = 10.0

#: Sent with every connection. JIT only slows the short queries this service runs.
SERVER_SETTINGS = {"application_name": "taskgate", "jit": "off"}


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, for messages; never the password.

    "postgresql://u:secret@db:6432/tasks" gives "db:6432/tasks";
    "postgresql://postgres@/postgres?host=/run/pg" gives "/run/pg/postgres".
    """
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["localhost"])[0]
        port = parts.port or query.get("port", [""])[0]
    except ValueError:
        return "the configured database"
    database = parts.path.lstrip("/")
    where = f"{host}:{port}" if port else host
    return f"{where}/{database}" if database else where


async def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> asyncpg.Pool:
    """Create a pool and open `min_size` connections now, so a bad DSN fails at start-up."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=SERVER_SETTINGS,
            reset=_reset_if_dirty,
        )
    except (
        OSError,
        TimeoutError,
        ValueError,  # a DSN asyncpg cannot use (its own parsing errors included)
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
    ) as exc:
        raise StoreUnavailableError(
            f"database unavailable: cannot connect to {describe_dsn(dsn)}: {reason(exc)}"
        ) from exc
    log.info("connected to PostgreSQL at %s", describe_dsn(dsn))
    return pool


class _QuietPoolFilter(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect (every second or so
    while the database is down); that is an expected failure, not a bug: one line per kind of
    failure every 10 s, with a count, instead."""

    def __init__(self) -> None:
        super().__init__()
        self._limited = RateLimitedLog(log)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        self._limited.warning(
            (record.msg, type(error)), "%s: %s", record.getMessage(), reason(error)
        )
        return False


_pool_filter = _QuietPoolFilter()
logging.getLogger("asyncpg.pool").addFilter(_pool_filter)


async def _reset_if_dirty(connection: asyncpg.Connection) -> None:
    """Reset a released connection only when a transaction is still open on it.

    asyncpg's default runs a reset query (RESET ALL, UNLISTEN *, advisory unlocks, ...) on every
    release: a fifth of a ListTasks call's round trips. taskgate sets no session state, listens
    to nothing and takes advisory locks only while migrating (released explicitly), so the only
    leftover a connection can carry is a transaction a cancelled call did not finish.
    """
    if connection.is_in_transaction():
        await connection.reset()


def reason(exc: BaseException) -> str:
    """A short cause without the DSN: asyncpg's messages name hosts and users, never passwords."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@asynccontextmanager
async def pool_context(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> AsyncIterator[asyncpg.Pool]:
    """`async with pool_context(dsn) as pool:`; closes the pool on exit (terminates it if
    connections are still busy after CLOSE_TIMEOUT_SECONDS)."""
    pool = await open_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    try:
        yield pool
    finally:
        await close_pool(pool)


async def close_pool(pool: asyncpg.Pool, grace_seconds: float = CLOSE_TIMEOUT_SECONDS) -> None:
    """Close gracefully, then terminate whatever is still running."""
    try:
        async with asyncio_timeout(grace_seconds):
            await pool.close()
    except TimeoutError:
        log.warning("database pool did not close within %.0fs; terminating it", grace_seconds)
        pool.terminate()
