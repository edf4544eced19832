"""Apply the append-only SQL files in store/migrations, once, under an advisory lock.

Any number of replicas may call apply_migrations at the same time: the first one applies the
pending files, the others wait for the lock and then find nothing to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from taskgate.store import queries
from taskgate.store.errors import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

Connection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"

#: Waiting for another replica's migrations, or building an index on a large table, may take
#: far longer than the pool's command timeout.
MIGRATION_TIMEOUT_SECONDS = 3600.0

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of store/migrations: `name` is its file name, e.g. "0001_create_tasks.sql"."""

    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migration files in order; numbers must be unique."""
    directory = resources.files("taskgate.store").joinpath("migrations")
    migrations = sorted(
        (
            Migration(entry.name, entry.read_text(encoding="utf-8"))
            for entry in directory.iterdir()
            if _MIGRATION_NAME.match(entry.name)
        ),
        key=lambda migration: migration.name,
    )
    numbers = [migration.name[:4] for migration in migrations]
    if len(set(numbers)) != len(numbers):
        raise StoreError(f"duplicate migration numbers in {[m.name for m in migrations]}")
    return migrations


async def apply_migrations(target: asyncpg.Pool | Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied."""
    try:
        if isinstance(target, asyncpg.Pool):
            async with target.acquire() as connection:
                return await _apply_locked(connection)
        return await _apply_locked(target)
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as exc:
        raise StoreUnavailableError("database unavailable") from exc
    except asyncpg.PostgresError as exc:
        raise StoreError(f"migration failed: SQLSTATE {exc.sqlstate}: {exc}") from exc


async def _apply_locked(connection: Connection) -> list[str]:
    # A session-level lock: held across the per-file transactions, released in `finally`
    # (or by PostgreSQL when the connection dies).
    await connection.execute(
        queries.LOCK_MIGRATIONS, queries.MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT_SECONDS
    )
    try:
        await connection.execute(queries.CREATE_SCHEMA_MIGRATIONS)
        applied = {row["name"] for row in await connection.fetch(queries.SELECT_APPLIED_MIGRATIONS)}
        done: list[str] = []
        for migration in load_migrations():
            if migration.name in applied:
                continue
            log.info("applying migration %s", migration.name)
            async with connection.transaction():
                await connection.execute(migration.sql, timeout=MIGRATION_TIMEOUT_SECONDS)
                await connection.execute(queries.INSERT_APPLIED_MIGRATION, migration.name)
            done.append(migration.name)
        return done
    finally:
        if not connection.is_closed():
            await connection.execute(queries.UNLOCK_MIGRATIONS, queries.MIGRATION_LOCK_KEY)
