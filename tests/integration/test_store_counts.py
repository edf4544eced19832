"""total_size from the per-namespace counts (migration 0003, decisions P20-P23): exact under
concurrent writers, unchanged by writes that fail or roll back, backfilled from existing rows,
and read without scanning the tasks table."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from taskgate.store import (
    Column,
    Condition,
    Cursor,
    NewTask,
    Op,
    StoreError,
    TaskQuery,
    TaskStore,
    queries,
)
from taskgate.store.migrate import apply_migrations, load_migrations

SELECT_TRUE_COUNTS = "SELECT namespace, count(*) AS n FROM tasks GROUP BY namespace"
SELECT_KEPT_COUNTS = (
    "SELECT namespace, sum(n) AS n FROM task_counts GROUP BY namespace HAVING sum(n) <> 0"
)
INSERT_ROW = """
INSERT INTO tasks (id, namespace, pipeline_name, run_id, mlmd_execution_id, created_at,
                   fingerprint)
VALUES (gen_random_uuid()::text, $1, 'p', 'r', '1', 1, 'f')
"""


def new_task(namespace: str, i: int = 0) -> NewTask:
    return NewTask(
        namespace=namespace,
        pipeline_name=f"namespace/{namespace}/pipeline/p",
        run_id="run",
        mlmd_execution_id=str(i),
        created_at=1_700_000_000 + i,
        finished_at=0,
        fingerprint=f"fp-{i}",
    )


async def counts(connection: asyncpg.Pool | asyncpg.Connection, sql: str) -> dict[str, int]:
    return {row["namespace"]: int(row["n"]) for row in await connection.fetch(sql)}


async def total(store: TaskStore, *conditions: Condition) -> int:
    return (await store.list_tasks(TaskQuery(conditions=conditions, limit=1))).total_size


async def test_count_is_exact_under_concurrent_creates(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    writers = [task_store.create_task(new_task("busy", i)) for i in range(150)]
    writers += [task_store.create_task(new_task("quiet", i)) for i in range(30)]
    writers += [task_store.create_task(new_task("", i)) for i in range(20)]

    await asyncio.gather(*writers)

    assert await counts(pool, SELECT_KEPT_COUNTS) == {"busy": 150, "quiet": 30, "": 20}
    assert await total(task_store) == 200
    assert await total(task_store, Condition(Column.NAMESPACE, Op.EQ, "busy")) == 150
    # Multi-user mode's restriction: the sum of the readable namespaces' counts.
    readable = Condition(Column.NAMESPACE, Op.IN, ("", "quiet", "elsewhere"))
    assert await total(task_store, readable) == 50
    assert await total(task_store, Condition(Column.NAMESPACE, Op.EQ, "busy"), readable) == 0


async def test_writes_that_fail_or_roll_back_leave_the_count_right(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    await task_store.create_task(new_task("ns"))

    with pytest.raises(StoreError):  # a CHECK violation: the INSERT fails
        await task_store.create_task(new_task("ns" + "x" * 300))
    async with pool.acquire() as connection:
        with pytest.raises(asyncpg.CheckViolationError):  # one bad row fails the statement
            await connection.execute(
                "INSERT INTO tasks (id, namespace, pipeline_name, run_id, mlmd_execution_id,"
                " created_at, fingerprint) VALUES ('a', 'ns', 'p', 'r', '1', 1, 'f'),"
                " ('b', repeat('x', 300), 'p', 'r', '1', 1, 'f')"
            )
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(INSERT_ROW, "ns")
        await connection.execute("DELETE FROM tasks WHERE namespace = 'ns'")
        await connection.execute(INSERT_ROW, "other")
        await transaction.rollback()

    assert await counts(pool, SELECT_KEPT_COUNTS) == {"ns": 1}
    assert await total(task_store) == 1


async def test_delete_update_and_truncate_keep_the_count(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    for i in range(6):
        await task_store.create_task(new_task("a", i))

    await pool.execute("DELETE FROM tasks WHERE mlmd_execution_id IN ('0', '1')")
    await pool.execute("UPDATE tasks SET namespace = 'b' WHERE mlmd_execution_id = '2'")
    assert await counts(pool, SELECT_KEPT_COUNTS) == await counts(pool, SELECT_TRUE_COUNTS)
    assert await counts(pool, SELECT_KEPT_COUNTS) == {"a": 3, "b": 1}

    await pool.execute("TRUNCATE tasks")
    assert await total(task_store) == 0
    assert await pool.fetchval("SELECT count(*) FROM task_counts") == 0


async def test_migration_backfills_a_table_that_has_rows(scratch_database_url: str) -> None:
    earlier = [m for m in load_migrations() if m.name < "0003"]
    connection = await asyncpg.connect(scratch_database_url)
    try:
        await connection.execute(queries.CREATE_SCHEMA_MIGRATIONS)
        for migration in earlier:
            await connection.execute(migration.sql)
            await connection.execute(queries.INSERT_APPLIED_MIGRATION, migration.name)
        for namespace, rows in (("a", 3), ("b", 2), ("", 1)):
            for _ in range(rows):
                await connection.execute(INSERT_ROW, namespace)

        applied = await apply_migrations(connection)
        await connection.execute(INSERT_ROW, "a")  # the trigger counts from here on

        kept = await counts(connection, SELECT_KEPT_COUNTS)
    finally:
        await connection.close()

    assert "0003_task_counts.sql" in applied
    assert kept == {"a": 4, "b": 2, "": 1}


def relations(plan: dict[str, object]) -> set[str]:
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    found = {str(plan["Relation Name"])} if "Relation Name" in plan else set()
    return found.union(*(relations(child) for child in children))


def count_node(plan: dict[str, object]) -> dict[str, object]:
    """The plan node of the count subquery (the Aggregate that feeds total_size)."""
    if plan.get("Node Type") == "Aggregate":
        return plan
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    for child in children:
        found = count_node(child)
        if found:
            return found
    return {}


@pytest.mark.parametrize(
    "conditions",
    [
        (),
        (Condition(Column.NAMESPACE, Op.EQ, "a"),),
        (Condition(Column.NAMESPACE, Op.IN, ("a", "b")),),
    ],
    ids=["unfiltered", "namespace", "readable-namespaces"],
)
async def test_the_count_reads_the_counts_table_not_the_tasks(
    pool: asyncpg.Pool, task_store: TaskStore, conditions: tuple[Condition, ...]
) -> None:
    statements = queries.task_page_statements(TaskQuery(conditions=conditions))

    async with pool.acquire() as connection:
        plan = json.loads(
            await connection.fetchval(
                f"EXPLAIN (FORMAT JSON) {statements.page_sql}", *statements.rows_args
            )
        )[0]["Plan"]
        text = "\n".join(
            row[0]
            for row in await connection.fetch(
                f"EXPLAIN {statements.count_sql}", *statements.rows_args[:-1]
            )
        )

    assert relations(count_node(plan)) == {"task_counts"}
    assert "on tasks" not in text


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("after", [None, Cursor(5, "m")], ids=["first", "next"])
async def test_a_namespace_page_comes_from_the_namespace_index(
    pool: asyncpg.Pool, descending: bool, after: Cursor | None
) -> None:
    """P25: a namespace's page in the default order does not walk the table's created_at index
    past other namespaces' rows. Sorts and sequential scans are priced out so the plan shows
    which index CAN deliver the page in order."""
    query = TaskQuery(
        conditions=(Condition(Column.NAMESPACE, Op.EQ, "a"),), descending=descending, after=after
    )
    statements = queries.task_page_statements(query)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        await connection.execute("SET LOCAL enable_sort = off")
        await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        text = "\n".join(
            row[0]
            for row in await connection.fetch(
                f"EXPLAIN {statements.rows_sql}", *statements.rows_args
            )
        )

    assert "tasks_namespace_created_at_id_idx" in text
    assert "Sort" not in text
