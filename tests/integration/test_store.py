"""TaskStore against a real PostgreSQL: roundtrip, ordering, paging, counts, filters, keys."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import asdict, replace

import asyncpg
import pytest

from taskgate.store import (
    Column,
    Condition,
    Cursor,
    NewTask,
    Op,
    StoreUnavailableError,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskStore,
    open_pool,
)
from taskgate.store.queries import task_page_statements

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_task(**fields: object) -> NewTask:
    base = NewTask(
        namespace="ns1",
        pipeline_name="namespace/ns1/pipeline/p1",
        run_id="run1",
        mlmd_execution_id="1",
        created_at=1_700_000_000,
        finished_at=0,
        fingerprint="fp",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def expected_order(records: list[TaskRecord], sort: Column, descending: bool) -> list[str]:
    """Python's str order is code-point order, which is UTF-8 byte order, like COLLATE "C"."""
    ordered = sorted(records, key=lambda r: (r.sort_value(sort), r.id), reverse=descending)
    return [record.id for record in ordered]


async def create_all(store: TaskStore, tasks: list[NewTask]) -> list[TaskRecord]:
    return [await store.create_task(task) for task in tasks]


async def list_ids(store: TaskStore, query: TaskQuery) -> list[str]:
    return [record.id for record in (await store.list_tasks(query)).records]


async def test_create_then_list_roundtrip(task_store: TaskStore) -> None:
    task = new_task(finished_at=1_700_000_050, mlmd_execution_id="42")

    created = await task_store.create_task(task)
    page = await task_store.list_tasks(TaskQuery())

    assert UUID4.match(created.id)
    assert created == TaskRecord(id=created.id, **asdict(task))
    assert page == TaskPage(records=[created], next_cursor=None, total_size=1)


async def test_duplicates_are_allowed_and_ids_differ(task_store: TaskStore) -> None:
    first = await task_store.create_task(new_task())
    second = await task_store.create_task(new_task())

    assert first.id != second.id
    assert (await task_store.list_tasks(TaskQuery())).total_size == 2


async def test_longest_values_fit_every_index(task_store: TaskStore) -> None:
    """255 characters of 4-byte UTF-8 in every text column (decision D12's limit); random,
    so PostgreSQL cannot compress them below btree's 2704-byte index row limit."""
    rng = random.Random(255)

    def longest() -> str:
        return "".join(chr(rng.randrange(0x1F300, 0x1FAFF)) for _ in range(255))

    task = new_task(
        namespace=longest(),
        pipeline_name=longest(),
        run_id=longest(),
        mlmd_execution_id=longest(),
        fingerprint=longest(),
    )

    created = await task_store.create_task(task)

    assert created == TaskRecord(id=created.id, **asdict(task))


async def test_empty_table_gives_empty_page(task_store: TaskStore) -> None:
    assert await task_store.list_tasks(TaskQuery()) == TaskPage([], None, 0)


# Values chosen so that byte order differs from any linguistic collation ("B" < "a" < "é").
MIXED_VALUES = ["a", "B", "é", "a b", "_", "%", "Z", "ab", ""]


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort", list(Column))
async def test_ordering_by_every_column_breaks_ties_by_id(
    task_store: TaskStore, sort: Column, descending: bool
) -> None:
    rng = random.Random(7)
    tasks = [
        new_task(
            namespace=rng.choice(MIXED_VALUES),
            pipeline_name=rng.choice(MIXED_VALUES),
            run_id=rng.choice(MIXED_VALUES),
            mlmd_execution_id=rng.choice(["1", "10", "2", "9"]),
            created_at=rng.choice([5, 1, -3, 2**40]),
            finished_at=rng.choice([0, 6, 2]),
            fingerprint=rng.choice(MIXED_VALUES),
        )
        for _ in range(30)
    ]
    records = await create_all(task_store, tasks)

    page = await task_store.list_tasks(TaskQuery(sort=sort, descending=descending, limit=100))

    assert [r.id for r in page.records] == expected_order(records, sort, descending)
    assert page.total_size == 30
    assert page.next_cursor is None


async def test_cache_lookup_picks_newest_then_largest_id(task_store: TaskStore) -> None:
    """The KFP v2 driver's query (docs/decisions.md K8, K21): ties in one second → largest id."""
    wanted = {"fingerprint": "abc", "pipeline_name": "pipeline/p", "namespace": ""}
    same_second = await create_all(task_store, [new_task(**wanted, created_at=5)] * 4)
    await create_all(task_store, [new_task(**wanted, created_at=4)])
    await create_all(task_store, [new_task(fingerprint="abc", created_at=9)])  # other pipeline
    query = TaskQuery(
        conditions=tuple(Condition(Column(k), Op.EQ, v) for k, v in wanted.items()),
        sort=Column.CREATED_AT,
        descending=True,
        limit=1,
    )

    page = await task_store.list_tasks(query)

    newest = max(record.id for record in same_second)
    assert [r.id for r in page.records] == [newest]
    assert page.total_size == 5
    assert page.next_cursor is not None
    assert page.next_cursor.sort_value == 5
    assert page.next_cursor.id == sorted(r.id for r in same_second)[-2]


async def test_kfp_store_paging_example(task_store: TaskStore) -> None:
    """KFP's own TestListTasks (docs/decisions.md K8): page size 1, total_size 2 on both pages."""
    rows = [
        ("ns1", "namespace/ns1/pipeline/pipeline1", 1),
        ("ns1", "namespace/ns1/pipeline/pipeline1", 3),
        ("ns1", "namespace/ns1/pipeline/pipeline1", 5),
        ("ns2", "namespace/ns2/pipeline/pipeline2", 5),
        ("ns2", "namespace/ns2/pipeline/pipeline2", 7),
    ]
    records = await create_all(
        task_store,
        [new_task(namespace=n, pipeline_name=p, created_at=c) for n, p, c in rows],
    )
    condition = Condition(Column.PIPELINE_NAME, Op.EQ, "namespace/ns2/pipeline/pipeline2")

    first = await task_store.list_tasks(TaskQuery(conditions=(condition,), limit=1))
    second = await task_store.list_tasks(
        TaskQuery(conditions=(condition,), limit=1, after=first.next_cursor)
    )

    assert [r.id for r in first.records] == [records[3].id]
    assert first.total_size == 2
    assert first.next_cursor is not None
    assert [r.id for r in second.records] == [records[4].id]
    assert second.total_size == 2
    assert second.next_cursor is None


async def page_through(store: TaskStore, query: TaskQuery) -> tuple[list[str], set[int]]:
    ids: list[str] = []
    totals: set[int] = set()
    while True:
        page = await store.list_tasks(query)
        ids.extend(record.id for record in page.records)
        totals.add(page.total_size)
        if page.next_cursor is None:
            return ids, totals
        assert len(page.records) == query.limit
        query = replace(query, after=page.next_cursor)


async def test_paging_through_1000_tasks_by_every_column(task_store: TaskStore) -> None:
    rng = random.Random(1000)
    records = await create_all(
        task_store,
        [
            new_task(
                namespace=f"ns{rng.randrange(7)}",
                pipeline_name=rng.choice(MIXED_VALUES),
                run_id=f"run{rng.randrange(40)}",
                mlmd_execution_id=str(rng.randrange(1000)),
                created_at=1_700_000_000 + rng.randrange(50),
                finished_at=rng.choice([0, 0, 1_700_000_100 + rng.randrange(3)]),
                fingerprint=f"fp{rng.randrange(5)}",
            )
            for _ in range(1000)
        ],
    )
    started = time.monotonic()
    for sort in Column:
        for descending in (False, True):
            query = TaskQuery(sort=sort, descending=descending, limit=37)
            ids, totals = await page_through(task_store, query)

            assert ids == expected_order(records, sort, descending), (sort, descending)
            assert totals == {1000}
    print(f"paged 1,000 tasks 16 ways in {time.monotonic() - started:.2f}s")  # noqa: T201


async def test_paging_with_conditions_keeps_total_size(task_store: TaskStore) -> None:
    rng = random.Random(3)
    records = await create_all(
        task_store,
        [
            new_task(namespace=f"ns{rng.randrange(4)}", created_at=rng.randrange(20))
            for _ in range(120)
        ],
    )
    conditions = (
        Condition(Column.NAMESPACE, Op.IN, ("ns1", "ns3")),
        Condition(Column.CREATED_AT, Op.GE, 5),
    )
    matching = [r for r in records if r.namespace in ("ns1", "ns3") and r.created_at >= 5]

    for descending in (False, True):
        query = TaskQuery(conditions=conditions, descending=descending, limit=7)
        ids, totals = await page_through(task_store, query)

        assert ids == expected_order(matching, Column.CREATED_AT, descending)
        assert totals == {len(matching)}


FILTER_TASKS = [
    # namespace, fingerprint, created_at
    ("ns1", "abc", 1),
    ("ns2", "a%c", 3),
    ("ns3", "a_c", 5),
    ("ns4", "a\\c", 5),
    ("NS1", "xabcx", 7),
    ("ns1", "ABC", 9),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Condition(Column.NAMESPACE, Op.EQ, "ns1"), {0, 5}),
        (Condition(Column.NAMESPACE, Op.NE, "ns1"), {1, 2, 3, 4}),
        (Condition(Column.NAMESPACE, Op.GT, "ns2"), {2, 3}),
        (Condition(Column.NAMESPACE, Op.GE, "ns2"), {1, 2, 3}),
        (Condition(Column.NAMESPACE, Op.LT, "ns2"), {0, 4, 5}),  # "NS1" < "ns1" in byte order
        (Condition(Column.NAMESPACE, Op.LE, "ns1"), {0, 4, 5}),
        (Condition(Column.CREATED_AT, Op.EQ, 5), {2, 3}),
        (Condition(Column.CREATED_AT, Op.NE, 5), {0, 1, 4, 5}),
        (Condition(Column.CREATED_AT, Op.GT, 5), {4, 5}),
        (Condition(Column.CREATED_AT, Op.GE, 5), {2, 3, 4, 5}),
        (Condition(Column.CREATED_AT, Op.LT, 5), {0, 1}),
        (Condition(Column.CREATED_AT, Op.LE, 5), {0, 1, 2, 3}),
        (Condition(Column.FINISHED_AT, Op.EQ, 0), {0, 1, 2, 3, 4, 5}),
        (Condition(Column.NAMESPACE, Op.IN, ("ns2", "ns4", "nope")), {1, 3}),
        (Condition(Column.CREATED_AT, Op.IN, (1, 9)), {0, 5}),
        (Condition(Column.NAMESPACE, Op.IN, ()), set()),
        (Condition(Column.CREATED_AT, Op.IN, ()), set()),
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, "abc"), {0, 4}),  # case-sensitive
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, "%"), {1}),  # literal, not a wildcard
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, "_"), {2}),
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, "a_c"), {2}),
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, "\\"), {3}),
        (Condition(Column.FINGERPRINT, Op.SUBSTRING, ""), {0, 1, 2, 3, 4, 5}),
        (Condition(Column.NAMESPACE, Op.SUBSTRING, "s"), {0, 1, 2, 3, 5}),
    ],
    ids=lambda value: str(value) if isinstance(value, set) else f"{value.column}-{value.op}",
)
async def test_every_operator(
    task_store: TaskStore, condition: Condition, expected: set[int]
) -> None:
    records = await create_all(
        task_store,
        [new_task(namespace=n, fingerprint=f, created_at=c) for n, f, c in FILTER_TASKS],
    )

    page = await task_store.list_tasks(TaskQuery(conditions=(condition,), limit=100))

    assert {r.id for r in page.records} == {records[i].id for i in expected}
    assert page.total_size == len(expected)


async def test_conditions_on_one_column_are_all_applied(task_store: TaskStore) -> None:
    await create_all(task_store, [new_task(fingerprint="a"), new_task(fingerprint="b")])
    both = (
        Condition(Column.FINGERPRINT, Op.EQ, "a"),
        Condition(Column.FINGERPRINT, Op.EQ, "b"),
    )

    page = await task_store.list_tasks(TaskQuery(conditions=both))

    assert page == TaskPage([], None, 0)


async def test_filter_on_id(task_store: TaskStore) -> None:
    records = await create_all(task_store, [new_task()] * 3)
    target = records[1]

    by_eq = await list_ids(task_store, TaskQuery((Condition(Column.ID, Op.EQ, target.id),)))
    by_in = await list_ids(task_store, TaskQuery((Condition(Column.ID, Op.IN, (target.id,)),)))

    assert by_eq == by_in == [target.id]


async def test_hostile_strings_are_only_values(task_store: TaskStore) -> None:
    hostile = "x'; DROP TABLE tasks; --"
    created = await task_store.create_task(new_task(namespace=hostile))

    page = await task_store.list_tasks(
        TaskQuery((Condition(Column.NAMESPACE, Op.EQ, hostile),), sort=Column.NAMESPACE)
    )

    assert page.records == [created]


async def test_token_key_is_stable_across_store_instances(pool: asyncpg.Pool) -> None:
    stores = [TaskStore(pool) for _ in range(5)]

    keys = await asyncio.gather(*(store.token_key() for store in stores))
    again = await TaskStore(pool).token_key()

    assert len(keys[0]) == 32
    assert set(keys) == {again}


async def test_ping(task_store: TaskStore) -> None:
    assert await task_store.ping() is True


async def test_closed_pool_is_unavailable(database_url: str) -> None:
    pool = await open_pool(database_url)
    store = TaskStore(pool)
    await pool.close()

    with pytest.raises(StoreUnavailableError, match="database unavailable"):
        await store.list_tasks(TaskQuery())
    with pytest.raises(StoreUnavailableError):
        await store.create_task(new_task())
    assert await store.ping() is False


async def test_closed_port_is_unavailable_quickly() -> None:
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError) as caught:
        _ = await open_pool("postgresql://taskgate:s3cret-pw@127.0.0.1:1/tasks")

    assert time.monotonic() - started < 5
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


async def test_backend_terminated_mid_query_is_unavailable(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """An administrator terminating our backend (57P01) reads as unavailable, not INTERNAL."""
    victim_pool = await open_pool(database_url, min_size=1, max_size=1)
    store = TaskStore(victim_pool)
    try:
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            listing = asyncio.create_task(store.list_tasks(TaskQuery()))
            for _ in range(500):  # bounded: 10 s at most
                if await blocker.fetchval(_TERMINATE_WAITING_TASKGATE_BACKENDS):
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(StoreUnavailableError):
                await listing
    finally:
        await victim_pool.close()


async def test_statement_timeout_is_unavailable(database_url: str, pool: asyncpg.Pool) -> None:
    slow_pool = await open_pool(database_url, command_timeout=0.3)
    try:
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailableError, match="database unavailable"):
                await TaskStore(slow_pool).list_tasks(TaskQuery())
    finally:
        await slow_pool.close()


_TERMINATE_WAITING_TASKGATE_BACKENDS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""


def plan_nodes(plan: dict[str, object]) -> list[dict[str, object]]:
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return [plan, *(node for child in children for node in plan_nodes(child))]


async def explain(pool: asyncpg.Pool, query: TaskQuery) -> list[dict[str, object]]:
    """The plan of the statement list_tasks runs, below its final ORDER BY (which only re-sorts
    the page's limit+1 rows), with sequential scans and sorts priced out so the planner shows
    whether an index CAN deliver the page in order (decision D15)."""
    statements = task_page_statements(query)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        await connection.execute("SET LOCAL enable_sort = off")
        await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        result = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) {statements.page_sql}", *statements.rows_args
        )
    root = json.loads(result)[0]["Plan"]
    assert root["Node Type"] == "Sort"  # the outer ORDER BY over at most limit+1 rows
    (join,) = root["Plans"]
    return plan_nodes(join)


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort", list(Column))
async def test_keyset_pages_come_from_an_index_in_order(
    pool: asyncpg.Pool, sort: Column, descending: bool
) -> None:
    after = Cursor(5 if sort.is_integer else "m", "00000000-0000-4000-8000-000000000000")

    nodes = await explain(pool, TaskQuery(sort=sort, descending=descending, after=after))

    assert not [node for node in nodes if node["Node Type"] == "Sort"]
    expected_index = "tasks_pkey" if sort is Column.ID else f"tasks_{sort}_id_idx"
    assert expected_index in {node.get("Index Name") for node in nodes}


async def test_cache_lookup_uses_its_index(pool: asyncpg.Pool) -> None:
    conditions = (
        Condition(Column.FINGERPRINT, Op.EQ, "abc"),
        Condition(Column.PIPELINE_NAME, Op.EQ, "pipeline/p"),
        Condition(Column.NAMESPACE, Op.EQ, ""),
    )
    # Statistics as in real data: one namespace, a fingerprint per few tasks. On an empty,
    # unanalysed table the planner cannot tell the fingerprint from the namespace apart and
    # may as well take tasks_namespace_created_at_id_idx (0003, decision P25).
    await pool.execute(
        "INSERT INTO tasks (id, namespace, pipeline_name, run_id, mlmd_execution_id,"
        " created_at, fingerprint) SELECT 'id-' || i, '', 'pipeline/p', 'r', '1', i, 'fp-' || i"
        " FROM generate_series(1, 500) AS i"
    )
    await pool.execute("ANALYZE tasks")

    nodes = await explain(pool, TaskQuery(conditions, descending=True, limit=1))

    assert not [node for node in nodes if node["Node Type"] == "Sort"]
    assert "tasks_cache_lookup_idx" in {node.get("Index Name") for node in nodes}
