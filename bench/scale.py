"""Does ListTasks stay flat as the table grows? Seed N tasks with COPY, time the calls that matter.

`python -m bench.scale` (from the repository root) makes a fresh database for each size (on
`--database-url`'s server, or on an embedded PostgreSQL it starts in a temporary directory),
applies the migrations, seeds it with COPY (a realistic spread of namespaces, pipelines,
fingerprints and runs; progress on stderr), starts a real `taskgate serve` in-process on
127.0.0.1 port 0 and times, through the gRPC door, one call after another:

  driver lookup   the KFP v2 driver's cache query: fingerprint, pipelineName and namespace
                  EQUALS, created_at desc, page_size 1 (tests/integration/kfp.py's eq_filter)
  first page      no filter, the default sort, page_size 20
  deep page       the same list from a page token whose cursor is the middle row of the table
                  (a real signed token, made with the database's key as the server makes them)
  namespace page  resource_reference_key NAMESPACE, page_size 20 (total_size of a namespace)
  create x32      CreateTask, 32 at a time, all in one namespace (the counts' contention)

It prints p50/p99 per call at `--small-rows` (1,000) and `--rows` (1,000,000) with the ratio,
and with `--explain` the plans of the list statements at the large size. The section between
the scale markers of bench/RESULTS.md is replaced (`--results -` prints it only).

A benchmark, not a test: it asserts nothing about time. Absolute figures move with whatever
else runs on the machine; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

from taskgate.api import resource_reference_pb2, task_pb2, task_pb2_grpc
from taskgate.command import Address
from taskgate.server.lifecycle import serving
from taskgate.server.page_tokens import PageToken, encode_page_token
from taskgate.server.settings import ServeSettings
from taskgate.store import (
    Column,
    Condition,
    Cursor,
    EmbeddedPostgres,
    Op,
    TaskQuery,
    TaskStore,
    apply_migrations,
    queries,
)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN_MARK = "<!-- bench.scale: begin -->"
END_MARK = "<!-- bench.scale: end -->"
PROGRESS_EVERY = 100_000
#: Seconds from which created_at counts; one task every ~2 s on average.
EPOCH = 1_700_000_000
COLUMNS = (
    "id",
    "namespace",
    "pipeline_name",
    "run_id",
    "mlmd_execution_id",
    "created_at",
    "finished_at",
    "fingerprint",
)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """How the seeded tasks spread: a few big namespaces and a long tail (Zipf-like weights),
    pipelines per namespace, runs of ~10 tasks, each fingerprint seen ~4 times (cache hits)."""

    namespaces: int = 50
    pipelines_per_namespace: int = 8
    tasks_per_run: int = 10
    tasks_per_fingerprint: int = 4


def uuid4_text(bits: int) -> str:
    """A version-4 UUID's text from 128 random bits (uuid.UUID is slow at a million)."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def generate(rows: int, shape: Shape, seed: int) -> Iterator[tuple[object, ...]]:
    """`rows` task tuples in COLUMNS order, created_at increasing with jitter. A task repeats an
    earlier fingerprint of its pipeline (a cache hit) with probability 1 - 1/tasks_per_fingerprint.
    """
    rng = random.Random(seed)
    namespaces = [f"ns-{i:03d}" for i in range(shape.namespaces)]
    weights = [1 / (i + 1) for i in range(shape.namespaces)]
    seen: dict[str, list[str]] = {}
    created = EPOCH
    run_id = ""
    namespace = pipeline = ""
    fingerprints: list[str] = []
    for i in range(rows):
        if i % shape.tasks_per_run == 0:
            namespace = rng.choices(namespaces, weights)[0]
            pipeline = (
                f"namespace/{namespace}/pipeline/p-{rng.randrange(shape.pipelines_per_namespace)}"
            )
            run_id = uuid4_text(rng.getrandbits(128))
            fingerprints = seen.setdefault(pipeline, [])
        created += rng.randrange(0, 4)
        if fingerprints and rng.randrange(shape.tasks_per_fingerprint):
            fingerprint = fingerprints[rng.randrange(len(fingerprints))]
        else:
            fingerprint = f"{rng.getrandbits(256):064x}"
            fingerprints.append(fingerprint)
        yield (
            uuid4_text(rng.getrandbits(128)),
            namespace,
            pipeline,
            run_id,
            str(i + 1),
            created,
            created + rng.randrange(1, 600),
            fingerprint,
        )


SELECT_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' ORDER BY indexname
"""


async def seed(connection: asyncpg.Connection, url: str, rows: int, shape: Shape) -> float:
    """COPY `rows` tasks; ANALYZE; the seconds it took. As pg_restore does, the indexes
    (exactly those the migrations made, the primary key's included) are dropped for the COPY
    and built again afterwards: much faster than maintaining nine indexes row by row."""
    started = time.perf_counter()
    indexes = await connection.fetch(SELECT_INDEXES)
    await connection.execute("SET maintenance_work_mem = '256MB'")
    await connection.execute("ALTER TABLE tasks DROP CONSTRAINT tasks_pkey")
    for index in indexes:
        await connection.execute(f'DROP INDEX IF EXISTS "{index["indexname"]}"')

    async def records() -> AsyncIterator[tuple[object, ...]]:
        # One COPY, fed as the rows are made: PostgreSQL stores one chunk while Python makes
        # the next (two cores), and the counts trigger fires once.
        for done, record in enumerate(generate(rows, shape, seed=rows), 1):
            yield record
            if done % PROGRESS_EVERY == 0:
                elapsed = time.perf_counter() - started
                progress(f"seeded {done:,}/{rows:,} rows ({elapsed:.0f}s)")

    await connection.copy_records_to_table("tasks", records=records(), columns=COLUMNS)
    progress(f"copied {rows:,} rows ({time.perf_counter() - started:.0f}s); building indexes")
    await build_indexes(connection, url, [str(index["indexdef"]) for index in indexes])
    await connection.execute(
        "ALTER TABLE tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY USING INDEX tasks_pkey"
    )
    if await connection.fetch(SELECT_INDEXES) != indexes:
        raise RuntimeError("the rebuilt indexes differ from the migrations'")
    await connection.execute("ANALYZE tasks")
    seconds = time.perf_counter() - started
    progress(f"seeded {rows:,} rows and analysed in {seconds:.1f}s")
    return seconds


async def build_indexes(connection: asyncpg.Connection, url: str, statements: list[str]) -> None:
    """CREATE INDEX statements on this connection and one more at once (CREATE INDEX takes a
    SHARE lock, so two builds on one table run side by side; one per core of a 2-core box)."""
    other = await asyncpg.connect(url)
    try:
        await other.execute("SET maintenance_work_mem = '256MB'")
        queue = list(statements)

        async def builder(on: asyncpg.Connection) -> None:
            while queue:
                await on.execute(queue.pop())

        await asyncio.gather(builder(connection), builder(other))
    finally:
        await other.close()


# --- databases -----------------------------------------------------------------------------


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def create_database(server_url: str) -> str:
    name = f"taskgate_scale_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


# --- the calls -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    p50_ms: float
    p99_ms: float


def timing(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Timing(statistics.median(ordered) * 1000, p99 * 1000)


CALLS = ("driver lookup", "first page", "deep page", "namespace page", "create x32")


@dataclass(frozen=True, slots=True)
class Seeded:
    """A seeded database: where it is, and what the calls ask for."""

    rows: int
    url: str
    seed_seconds: float
    middle: Cursor  # the middle row of the default order: the deep page's cursor
    lookups: list[tuple[str, str, str]]  # (fingerprint, pipeline_name, namespace) of real rows


@dataclass(frozen=True, slots=True)
class SizeResult:
    rows: int
    seed_seconds: float
    timings: dict[str, Timing]


def driver_filter(fingerprint: str, pipeline: str, namespace: str) -> str:
    # As the Go driver serialises it (protojson), cf. tests/integration/kfp.py.
    parts = [("fingerprint", fingerprint), ("pipelineName", pipeline), ("namespace", namespace)]
    predicates = ",".join(
        f'{{"op":"EQUALS","key":"{key}","stringValue":"{value}"}}' for key, value in parts
    )
    return f'{{"predicates":[{predicates}]}}'


async def prepare(server_url: str, rows: int, shape: Shape) -> Seeded:
    """A fresh database, migrated and seeded."""
    url = await create_database(server_url)
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
        seed_seconds = await seed(connection, url, rows, shape)
        middle = await connection.fetchrow(
            "SELECT created_at, id FROM tasks ORDER BY created_at, id OFFSET $1 LIMIT 1",
            rows // 2,
        )
        sample = await connection.fetch(
            "SELECT fingerprint, pipeline_name, namespace FROM tasks TABLESAMPLE SYSTEM (1)"
            " LIMIT 500"
        ) or await connection.fetch(
            "SELECT fingerprint, pipeline_name, namespace FROM tasks LIMIT 500"
        )
    finally:
        await connection.close()
    assert middle is not None  # noqa: S101 - rows > 0
    return Seeded(
        rows,
        url,
        seed_seconds,
        Cursor(int(middle["created_at"]), str(middle["id"])),
        [(str(r[0]), str(r[1]), str(r[2])) for r in sample],
    )


class Caller:
    """The calls of the table, against one seeded database's server."""

    def __init__(self, seeded: Seeded, stub: task_pb2_grpc.TaskServiceAsyncStub, key: bytes):
        self.seeded = seeded
        self.stub = stub
        self._rng = random.Random(seeded.rows)
        self._lookups = [driver_filter(*lookup) for lookup in seeded.lookups]
        cursor = seeded.middle
        self._deep_token = encode_page_token(PageToken(Column.CREATED_AT, False, (), cursor), key)
        self._namespace = resource_reference_pb2.ResourceKey(
            type=resource_reference_pb2.ResourceType.NAMESPACE, id="ns-001"
        )
        self.calls: dict[str, Callable[[], Awaitable[task_pb2.ListTasksResponse]]] = {
            "driver lookup": self.driver,
            "first page": self.first,
            "deep page": self.deep,
            "namespace page": self.namespace_page,
        }

    async def driver(self) -> task_pb2.ListTasksResponse:
        filter_text = self._rng.choice(self._lookups)
        request = task_pb2.ListTasksRequest(
            filter=filter_text, sort_by="created_at desc", page_size=1
        )
        return await self.stub.ListTasks(request)

    async def first(self) -> task_pb2.ListTasksResponse:
        return await self.stub.ListTasks(task_pb2.ListTasksRequest(page_size=20))

    async def deep(self) -> task_pb2.ListTasksResponse:
        request = task_pb2.ListTasksRequest(page_size=20, page_token=self._deep_token)
        return await self.stub.ListTasks(request)

    async def namespace_page(self) -> task_pb2.ListTasksResponse:
        request = task_pb2.ListTasksRequest(page_size=20, resource_reference_key=self._namespace)
        return await self.stub.ListTasks(request)

    async def check(self) -> None:
        """The deep page is the middle of the table, and total_size is exact."""
        rows = self.seeded.rows
        page = await self.deep()
        if page.total_size != rows or len(page.tasks) != min(20, rows - rows // 2):
            raise RuntimeError(f"deep page is wrong: {len(page.tasks)} of {page.total_size}")
        if page.tasks[0].id != self.seeded.middle.id:
            raise RuntimeError("the deep page does not start at the middle row")


async def time_interleaved(
    small: Callable[[], Awaitable[object]], large: Callable[[], Awaitable[object]], calls: int
) -> tuple[Timing, Timing]:
    """One call to each size in turn (the order swapped every round), so both sizes see the
    same moments of a busy machine."""
    for _ in range(max(3, calls // 10)):  # warm up: prepared statements, caches
        await small()
        await large()
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(calls):
        pair = ((0, small), (1, large)) if i % 2 == 0 else ((1, large), (0, small))
        for which, call in pair:
            started = time.perf_counter()
            await call()
            samples[which].append(time.perf_counter() - started)
    return timing(samples[0]), timing(samples[1])


async def measure(small: Seeded, large: Seeded, calls: int) -> tuple[SizeResult, SizeResult]:
    """Serve both databases at once (two in-process `taskgate serve`) and time each call."""
    async with AsyncExitStack() as stack:
        callers = []
        for seeded in (small, large):
            settings = ServeSettings(
                grpc_address=Address("127.0.0.1", 0),
                http_address=Address("127.0.0.1", 0),
                database_url=seeded.url,
                grace_period=1.0,
                log_level="WARNING",
            )
            running = await stack.enter_async_context(serving(settings))
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}")
            await stack.enter_async_context(channel)
            pool = await asyncpg.create_pool(seeded.url, min_size=1, max_size=1)
            try:
                key = await TaskStore(pool).token_key()
            finally:
                await pool.close()
            caller = Caller(seeded, task_pb2_grpc.TaskServiceStub(channel), key)
            await caller.check()
            callers.append(caller)
        timings: tuple[dict[str, Timing], dict[str, Timing]] = ({}, {})
        for name in callers[0].calls:
            a, b = await time_interleaved(callers[0].calls[name], callers[1].calls[name], calls)
            progress(f"{name}: p99 {a.p99_ms:.2f} ms / {b.p99_ms:.2f} ms")
            timings[0][name], timings[1][name] = a, b
        creates: tuple[list[float], list[float]] = ([], [])
        for _ in range(2):
            for which, caller in enumerate(callers):
                creates[which].extend(await concurrent_creates(caller.stub, max(calls, 64), 32))
        timings[0]["create x32"], timings[1]["create x32"] = timing(creates[0]), timing(creates[1])
    return (
        SizeResult(small.rows, small.seed_seconds, timings[0]),
        SizeResult(large.rows, large.seed_seconds, timings[1]),
    )


async def concurrent_creates(
    stub: task_pb2_grpc.TaskServiceAsyncStub, calls: int, concurrency: int
) -> list[float]:
    samples: list[float] = []
    queue = list(range(calls))

    async def one_client() -> None:
        while queue:
            i = queue.pop()
            task = task_pb2.Task(
                namespace="ns-000",
                pipelineName="namespace/ns-000/pipeline/bench",
                runId="run-bench",
                mlmdExecutionID=str(i),
                fingerprint=f"fp-bench-{i}",
            )
            task.created_at.GetCurrentTime()
            started = time.perf_counter()
            await stub.CreateTask(task_pb2.CreateTaskRequest(task=task))
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return samples


async def plans(seeded: Seeded) -> dict[str, str]:
    """EXPLAIN ANALYZE of the statement ListTasks runs, for each call and two other filters."""
    fingerprint, pipeline, namespace = seeded.lookups[0]
    driver = (
        Condition(Column.FINGERPRINT, Op.EQ, fingerprint),
        Condition(Column.NAMESPACE, Op.EQ, namespace),
        Condition(Column.PIPELINE_NAME, Op.EQ, pipeline),
    )
    cases = {
        "driver lookup": TaskQuery(conditions=driver, descending=True, limit=1),
        "first page": TaskQuery(limit=20),
        "deep page": TaskQuery(limit=20, after=seeded.middle),
        "namespace page": TaskQuery(
            conditions=(Condition(Column.NAMESPACE, Op.EQ, "ns-001"),), limit=20
        ),
        "runId filter": TaskQuery(
            conditions=(Condition(Column.RUN_ID, Op.EQ, "no-such-run"),), limit=20
        ),
        "created_at > filter": TaskQuery(
            conditions=(Condition(Column.CREATED_AT, Op.GT, EPOCH),), limit=20
        ),
    }
    found = {}
    connection = await asyncpg.connect(seeded.url)
    try:
        for name, query in cases.items():
            statements = queries.task_page_statements(query)
            rows = await connection.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statements.page_sql}",
                *statements.rows_args,
            )
            found[name] = "\n".join(row[0] for row in rows)
    finally:
        await connection.close()
    return found


# --- the report ----------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f'`nproc` {os.cpu_count()}, CPU "{cpu}", Linux {platform.release()}'


def report(small: SizeResult, large: SizeResult, calls: int, where: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN_MARK,
        f"## Scale: ListTasks at {small.rows:,} and {large.rows:,} rows (`python -m bench.scale`)",
        "",
        f"- Date: {now}. Machine: {machine()}. Database: {where}.",
        f"- {small.rows:,} and {large.rows:,} rows seeded with COPY "
        f"({small.seed_seconds:.1f}s and {large.seed_seconds:.1f}s, ANALYZE included); "
        f"{calls} calls of each kind per size, one at a time, through the gRPC doors of two "
        "in-process `taskgate serve` (one per size), alternating between the sizes; "
        "create x32 is 32 concurrent CreateTask in one namespace.",
        "- The machine is shared with other work: absolute numbers are noisy; the ratios "
        "within one run are what counts.",
        "",
        f"| call | p50 ms {small.rows:,} | p99 ms {small.rows:,} | p50 ms {large.rows:,} "
        f"| p99 ms {large.rows:,} | p50 ratio | p99 ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in CALLS:
        a, b = small.timings[name], large.timings[name]
        lines.append(
            f"| {name} | {a.p50_ms:.2f} | {a.p99_ms:.2f} | {b.p50_ms:.2f} | {b.p99_ms:.2f} "
            f"| {b.p50_ms / a.p50_ms:.2f} | {b.p99_ms / a.p99_ms:.2f} |"
        )
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(BEGIN_MARK) + r".*?" + re.escape(END_MARK) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


async def run(args: argparse.Namespace) -> None:
    shape = Shape(namespaces=args.namespaces)
    embedded: EmbeddedPostgres | None = None
    data_dir: str | None = None
    server_url = args.database_url
    where = "the server of --database-url"
    if server_url is None:
        data_dir = tempfile.mkdtemp(prefix="taskgate-scale-pg-")
        embedded = EmbeddedPostgres(Path(data_dir))
        progress("starting the embedded PostgreSQL")
        server_url = await embedded.start()
        where = "the embedded PostgreSQL, default settings"
    databases: list[str] = []
    try:
        small = await prepare(server_url, args.small_rows, shape)
        databases.append(small.url)
        large = await prepare(server_url, args.rows, shape)
        databases.append(large.url)
        small_result, large_result = await measure(small, large, args.calls)
        found = await plans(large) if args.explain else {}
    finally:
        for url in databases:
            await drop_database(server_url, url)
        if embedded is not None:
            await embedded.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    section = report(small_result, large_result, args.calls, where)
    print(section)
    for name, plan in found.items():
        print(f"### EXPLAIN ANALYZE at {large.rows:,} rows: {name}\n{plan}\n")
    if args.results != "-":
        write_results(Path(args.results), section)
        progress(f"wrote the scale section of {args.results}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--database-url", help="a PostgreSQL server to create databases on")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--explain", action="store_true", help="print the plans at --rows")
    parser.add_argument("--results", default=str(RESULTS), help="file to write, or - for none")
    args = parser.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
