"""apply_migrations on a real PostgreSQL: the schema it builds, idempotence, concurrency."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from taskgate.store import apply_migrations
from taskgate.store.migrate import load_migrations

EXPECTED_COLUMNS = {
    # column: (type, collation, nullable)
    "id": ("text", "C", "NO"),
    "namespace": ("text", "C", "NO"),
    "pipeline_name": ("text", "C", "NO"),
    "run_id": ("text", "C", "NO"),
    "mlmd_execution_id": ("text", "C", "NO"),
    "created_at": ("bigint", None, "NO"),
    "finished_at": ("bigint", None, "NO"),
    "fingerprint": ("text", "C", "NO"),
}

SELECT_COLUMNS = """
SELECT column_name, data_type, collation_name, is_nullable
FROM information_schema.columns WHERE table_name = 'tasks'
"""

SELECT_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"


def test_migration_files_are_numbered_and_packaged() -> None:
    names = [migration.name for migration in load_migrations()]

    assert names[:2] == ["0001_create_tasks.sql", "0002_cache_index_fits_long_values.sql"]
    assert names == sorted(names)


async def test_fresh_database_gets_the_schema_once(scratch_database_url: str) -> None:
    connection = await asyncpg.connect(scratch_database_url)
    try:
        first = await apply_migrations(connection)
        second = await apply_migrations(connection)
        columns = {
            row["column_name"]: (row["data_type"], row["collation_name"], row["is_nullable"])
            for row in await connection.fetch(SELECT_COLUMNS)
        }
        indexes = {
            row["indexname"]: row["indexdef"] for row in await connection.fetch(SELECT_INDEXES)
        }
        recorded = await connection.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await connection.close()

    assert first == [migration.name for migration in load_migrations()]
    assert second == []
    assert recorded == len(first)
    assert columns == EXPECTED_COLUMNS
    assert "(fingerprint, created_at DESC, id DESC)" in indexes["tasks_cache_lookup_idx"]
    for column in EXPECTED_COLUMNS:
        if column != "id":
            assert f"({column}, id)" in indexes[f"tasks_{column}_id_idx"]


async def test_concurrent_replicas_apply_each_migration_once(scratch_database_url: str) -> None:
    connections = [await asyncpg.connect(scratch_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in connections))
        lock_left = await connections[0].fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        )
    finally:
        for connection in connections:
            await connection.close()

    applied = [names for names in results if names]
    assert len(applied) == 1
    assert applied[0] == [migration.name for migration in load_migrations()]
    assert lock_left == 0


async def test_pool_is_accepted_and_session_database_is_current(pool: asyncpg.Pool) -> None:
    assert await apply_migrations(pool) == []


async def test_default_finished_at_is_zero(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO tasks (id, namespace, pipeline_name, run_id, mlmd_execution_id,"
        " created_at, fingerprint) VALUES ('x', '', 'p', 'r', 'm', 1, 'f')"
    )

    assert await pool.fetchval("SELECT finished_at FROM tasks WHERE id = 'x'") == 0


@pytest.mark.parametrize("column", ["namespace", "pipeline_name", "run_id", "fingerprint"])
async def test_strings_over_255_characters_are_refused(pool: asyncpg.Pool, column: str) -> None:
    values = {"namespace": "n", "pipeline_name": "p", "run_id": "r", "fingerprint": "f"}
    values[column] = "é" * 256

    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO tasks (id, namespace, pipeline_name, run_id, mlmd_execution_id,"
            " created_at, fingerprint) VALUES ('x', $1, $2, $3, 'm', 1, $4)",
            *values.values(),
        )
