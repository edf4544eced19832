"""Group commit of concurrent CreateTask calls (store/group_commit.py, decision P34) on a real
PostgreSQL: a batch writes every row and keeps the counts exact; a row PostgreSQL rejects fails
its own caller only; a database lost mid-batch fails every caller quickly; a cancelled caller
does not stop its batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

import asyncpg
import pytest

from taskgate.store import NewTask, StoreError, StoreUnavailableError, TaskRecord, TaskStore
from taskgate.store.pool import open_pool

SELECT_KEPT_COUNTS = (
    "SELECT namespace, sum(n) AS n FROM task_counts GROUP BY namespace HAVING sum(n) <> 0"
)
#: Our pool's backends waiting for a lock (on the blocker's LOCK TABLE).
WAITING = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""
#: Seconds a caller may wait for its answer while the database is lost (a loaded machine).
FAIL_FAST_SECONDS = 10.0


def new_task(i: int, namespace: str = "ns1") -> NewTask:
    return NewTask(
        namespace=namespace,
        pipeline_name=f"namespace/{namespace}/pipeline/p",
        run_id="run",
        mlmd_execution_id=str(i),
        created_at=1_700_000_000 + i,
        finished_at=0,
        fingerprint=f"fp-{i}",
    )


def spy_on_batches(store: TaskStore) -> list[int]:
    """The size of every batch the store writes from now on, in order."""
    sizes: list[int] = []
    batcher = store._creates
    write_batch = batcher._write_batch

    async def counted(items: list[tuple[str, NewTask]]) -> Sequence[TaskRecord | BaseException]:
        sizes.append(len(items))
        return await write_batch(items)

    batcher._write_batch = counted
    return sizes


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {row["namespace"]: int(row["n"]) for row in await pool.fetch(SELECT_KEPT_COUNTS)}


async def until_waiting(
    blocker: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, count: int = 1
) -> list[int]:
    """The PIDs of `count` backends waiting for the blocker's lock (bounded: 10 s)."""
    for _ in range(500):
        # Inside the blocker's transaction, pg_stat_activity is read once and then cached.
        await blocker.execute("SELECT pg_stat_clear_snapshot()")
        pids = [row["pid"] for row in await blocker.fetch(WAITING)]
        if len(pids) >= count:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError("no backend came to wait for the lock")


async def test_concurrent_creates_are_written_together_and_counted(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    sizes = spy_on_batches(task_store)
    tasks = [new_task(i, namespace=("a", "b", "c")[i % 3]) for i in range(64)]

    records = await asyncio.gather(*(task_store.create_task(task) for task in tasks))

    assert sizes == [1, 63]  # the first at once, alone; the others together, in one INSERT
    assert len({record.id for record in records}) == 64
    # Each caller got its own row back.
    assert [r.mlmd_execution_id for r in records] == [t.mlmd_execution_id for t in tasks]
    assert [r.namespace for r in records] == [t.namespace for t in tasks]
    stored = {
        row["id"]: row["mlmd_execution_id"] for row in await pool.fetch("SELECT * FROM tasks")
    }
    assert stored == {record.id: record.mlmd_execution_id for record in records}
    assert await counts(pool) == {"a": 22, "b": 21, "c": 21}


async def test_batches_stay_exact_under_a_longer_load(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    sizes = spy_on_batches(task_store)

    async def writer(w: int) -> list[TaskRecord]:
        return [await task_store.create_task(new_task(i, f"ns{w % 4}")) for i in range(25)]

    written = [r for records in await asyncio.gather(*map(writer, range(32))) for r in records]

    assert len({record.id for record in written}) == 800
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 800
    assert await counts(pool) == {f"ns{n}": 200 for n in range(4)}
    assert sum(sizes) == 800
    assert max(sizes) <= 64
    assert len(sizes) < 800


@pytest.mark.parametrize(
    "bad",
    [
        {"fingerprint": "nul\x00byte"},  # PostgreSQL's text rejects NUL (22021)
        {"namespace": "n" * 256},  # the CHECK of migration 0001 (23514)
    ],
    ids=["nul", "check"],
)
async def test_a_bad_row_fails_its_caller_only(
    pool: asyncpg.Pool, task_store: TaskStore, bad: dict[str, str]
) -> None:
    """Validation keeps such values out of CreateTask (D12); the store API lets them through."""
    sizes = spy_on_batches(task_store)
    tasks = [new_task(i) for i in range(11)]
    tasks[6] = replace(tasks[6], **bad)  # type: ignore[arg-type]

    outcomes = await asyncio.gather(
        *(task_store.create_task(task) for task in tasks), return_exceptions=True
    )

    assert sizes[:2] == [1, 10]  # the bad row was in a batch of ten, which failed as a whole
    assert isinstance(outcomes[6], StoreError)
    assert not isinstance(outcomes[6], StoreUnavailableError)
    good = [o for i, o in enumerate(outcomes) if i != 6]
    assert all(isinstance(o, TaskRecord) for o in good)
    stored = {row["id"] for row in await pool.fetch("SELECT id FROM tasks")}
    assert stored == {o.id for o in good if isinstance(o, TaskRecord)}
    assert await counts(pool) == {"ns1": 10}


async def test_database_lost_mid_batch_fails_every_caller_quickly(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The batch's backend is terminated as a fast shutdown of PostgreSQL would (57P01) while
    its INSERT waits for a lock."""
    victim_pool = await open_pool(database_url, min_size=1, max_size=2)
    store = TaskStore(victim_pool)
    sizes = spy_on_batches(store)
    try:
        async with pool.acquire() as blocker:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                calls = [asyncio.create_task(store.create_task(new_task(i))) for i in range(41)]
                # The first call's INSERT waits for the lock; cancel that statement, so the
                # 40 queued calls go in one batch, which waits for the lock in turn.
                (first,) = await until_waiting(blocker)
                await blocker.execute("SELECT pg_cancel_backend($1)", first)
                with pytest.raises(StoreUnavailableError):
                    await calls[0]
                (batch,) = await until_waiting(blocker)
                assert sizes == [1, 40]
                await blocker.execute("SELECT pg_terminate_backend($1)", batch)
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*calls[1:], return_exceptions=True), FAIL_FAST_SECONDS
                )
            elapsed = time.monotonic() - started
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes), outcomes
        assert len({id(o) for o in outcomes}) == 40  # each caller raises its own
        assert elapsed < FAIL_FAST_SECONDS
        assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
        assert await counts(pool) == {}
        # The store recovers: the next calls are written.
        await asyncio.gather(*(store.create_task(new_task(i)) for i in range(5)))
        assert await counts(pool) == {"ns1": 5}
    finally:
        await victim_pool.close()


async def test_closed_pool_fails_a_queued_batch_quickly(database_url: str) -> None:
    victim_pool = await open_pool(database_url, min_size=1, max_size=2)
    store = TaskStore(victim_pool)
    calls = [asyncio.create_task(store.create_task(new_task(i))) for i in range(20)]
    await asyncio.sleep(0)
    victim_pool.terminate()

    outcomes = await asyncio.wait_for(
        asyncio.gather(*calls, return_exceptions=True), FAIL_FAST_SECONDS
    )

    assert all(isinstance(o, StoreUnavailableError) for o in outcomes), outcomes


async def test_a_cancelled_caller_does_not_stop_its_batch(
    pool: asyncpg.Pool, task_store: TaskStore
) -> None:
    sizes = spy_on_batches(task_store)
    async with pool.acquire() as blocker:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            calls = [asyncio.create_task(task_store.create_task(new_task(i))) for i in range(11)]
            (first,) = await until_waiting(blocker)
            await blocker.execute("SELECT pg_cancel_backend($1)", first)
            with pytest.raises(StoreUnavailableError):
                await calls[0]
            await until_waiting(blocker)  # the batch of ten waits for the lock
            assert sizes == [1, 10]
            calls[1].cancel()  # the batch's first caller, whose trace it runs in
            calls[5].cancel()
            await asyncio.sleep(0.05)
        records = await asyncio.gather(*calls[2:5], *calls[6:])

    assert calls[1].cancelled()
    assert calls[5].cancelled()
    assert all(isinstance(record, TaskRecord) for record in records)
    # The cancelled callers' rows were in the INSERT already: committed with the others,
    # as a cancel during a single INSERT may commit.
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 10
    assert await counts(pool) == {"ns1": 10}
