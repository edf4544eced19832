"""Soak: a mixed load on both doors of a real `taskgate serve` for a given time (default 600 s).

    python bench/soak.py [--duration 600] [--workers 16] [--database-url URL] [--window 10]

Starts `taskgate serve` (gRPC :19987, REST :19988) on an embedded PostgreSQL in a fresh
temporary data directory, or on `--database-url` (its tasks table is used as it is: ids are
checked, not counts). Seeds a namespace of PAGED_TASKS tasks for paging, then runs `--workers`
asyncio workers in this one process, each looping until the time is up on a weighted random
choice of:

- create: CreateTask (gRPC) / POST /apis/v1alpha1/tasks (REST), KFP launcher-shaped tasks in
  a few namespaces, fingerprints drawn from a bounded set (so lookups find some);
- lookup: the KFP driver's cache lookup, ListTasks with EQUALS on pipelineName, fingerprint and
  namespace, `sort_by=created_at desc`, `page_size=1` (gRPC ListTasksV1 / REST GET);
- page: a walk through the seeded namespace with page tokens, page size 25 (gRPC ListTasks /
  REST GET); every page is one request, and a walk that does not return exactly the seeded ids
  counts as an error.

Every `--window` seconds it records requests by kind and door, errors (any non-OK / non-2xx,
a transport error or a timeout; the count and the first messages), p50/p99 latency and the
server's VmRSS (/proc/PID/status). At the end it checks that every CreateTask it saw
acknowledged is in the table exactly once (one SQL query over all the ids), prints a summary,
and writes bench/results/soak-<date>.md (raw JSON in bench/results/raw/). Only 127.0.0.1; the
server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import asyncpg
import grpc
from _harness import BENCH, RAW, Procs, log, machine, memory_kib, save_json, table, wait_http

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.store.embedded_os import read_postmaster_pid

GRPC_PORT, REST_PORT = 19987, 19988
TASKS_PATH = "/apis/v1alpha1/tasks"
PAGED_NAMESPACE = "soak-paged"
PAGED_TASKS = 200
PAGE_SIZE = 25
NAMESPACES = [f"soak-ns{i}" for i in range(4)]
PIPELINES = [f"p{i}" for i in range(8)]  # as namespace/<ns>/pipeline/<p> (KFP checks <ns>)
FINGERPRINTS = 2000
#: kind -> weight (each kind is split evenly between the two doors)
MIX = {"create": 4, "lookup": 4, "page": 1}
CALL_TIMEOUT = 30.0
FIRST_ERRORS = 10
T = TypeVar("T")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class Window:
    """What happened in one recording interval."""

    requests: Counter[str] = field(default_factory=Counter)  # "kind/door" -> count
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds


@dataclass
class Stats:
    window: Window = field(default_factory=Window)
    windows: list[dict[str, object]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    acknowledged: list[str] = field(default_factory=list)  # ids CreateTask answered with
    wall: float = 0.0  # seconds from the start of the load to the last worker's end
    postgres: str = "?"  # the server's version

    def ok(self, key: str, seconds: float) -> None:
        self.window.requests[key] += 1
        self.window.latencies.append(seconds)
        self.requests[key] += 1
        self.latencies[key].append(seconds)

    def error(self, key: str, seconds: float, message: str) -> None:
        self.ok(key, seconds)
        self.window.errors[key] += 1
        self.errors[key] += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(f"{key}: {message[:300]}")
            log(f"error {key}: {message[:300]}")


def _task_fields(rng: random.Random) -> dict[str, str]:
    namespace = rng.choice(NAMESPACES)
    return {
        "namespace": namespace,
        "pipelineName": f"namespace/{namespace}/pipeline/{rng.choice(PIPELINES)}",
        "runId": f"run-{rng.randrange(1000)}",
        "mlmdExecutionID": str(rng.randrange(1, 10**6)),
        "fingerprint": f"fp-{rng.randrange(FINGERPRINTS)}",
    }


def _lookup_filter(rng: random.Random) -> str:
    namespace = rng.choice(NAMESPACES)
    pairs = {
        "pipelineName": f"namespace/{namespace}/pipeline/{rng.choice(PIPELINES)}",
        "fingerprint": f"fp-{rng.randrange(FINGERPRINTS)}",
        "namespace": namespace,
    }
    predicates = [{"op": "EQUALS", "key": k, "stringValue": v} for k, v in pairs.items()]
    return json.dumps({"predicates": predicates})


PAGED_FILTER = json.dumps(
    {"predicates": [{"op": "EQUALS", "key": "namespace", "stringValue": PAGED_NAMESPACE}]}
)


class Doors:
    """One gRPC channel and one aiohttp session shared by every worker."""

    def __init__(self, channel: grpc.aio.Channel, http: aiohttp.ClientSession) -> None:
        self.stub = task_pb2_grpc.TaskServiceStub(channel)
        self.http = http
        self.url = f"http://127.0.0.1:{REST_PORT}{TASKS_PATH}"

    async def create(self, door: str, fields: dict[str, str]) -> str:
        if door == "grpc":
            task = task_pb2.Task()
            for name, value in fields.items():
                setattr(task, name, value)
            task.created_at.GetCurrentTime()
            reply = await self.stub.CreateTask(
                task_pb2.CreateTaskRequest(task=task), timeout=CALL_TIMEOUT
            )
            return str(reply.id)
        body = {**fields, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        async with self.http.post(self.url, json=body) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} {text[:200]}")
            return str(json.loads(text)["id"])

    async def list(
        self,
        door: str,
        filter_text: str,
        sort_by: str,
        page_size: int,
        token: str = "",
        v1: bool = False,
    ) -> tuple[list[str], str]:
        if door == "grpc":
            request = task_pb2.ListTasksRequest(
                filter=filter_text, sort_by=sort_by, page_size=page_size, page_token=token
            )
            method = self.stub.ListTasksV1 if v1 else self.stub.ListTasks
            reply = await method(request, timeout=CALL_TIMEOUT)
            return [t.id for t in reply.tasks], str(reply.next_page_token)
        params = {"filter": filter_text, "sort_by": sort_by, "page_size": str(page_size)}
        if token:
            params["page_token"] = token
        async with self.http.get(self.url, params=params) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} {text[:200]}")
            data = json.loads(text)
            token = data.get("next_page_token") or data.get("nextPageToken") or ""
            return [t["id"] for t in data.get("tasks", [])], str(token)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"


async def _timed(stats: Stats, key: str, call: Awaitable[T]) -> T | None:
    started = time.perf_counter()
    try:
        result = await call
    except (grpc.aio.AioRpcError, aiohttp.ClientError, RuntimeError, TimeoutError) as error:
        stats.error(key, time.perf_counter() - started, _describe(error))
        return None
    stats.ok(key, time.perf_counter() - started)
    return result


async def worker(n: int, doors: Doors, stats: Stats, deadline: float, paged: set[str]) -> None:
    rng = random.Random(n)
    kinds = [kind for kind, weight in MIX.items() for _ in range(weight)]
    for _ in range(10**9):  # bounded by the deadline; the count is a backstop
        if time.monotonic() >= deadline:
            return
        kind, door = rng.choice(kinds), rng.choice(("grpc", "rest"))
        key = f"{kind}/{door}"
        if kind == "create":
            task_id = await _timed(stats, key, doors.create(door, _task_fields(rng)))
            if isinstance(task_id, str):
                stats.acknowledged.append(task_id)
        elif kind == "lookup":
            call = doors.list(door, _lookup_filter(rng), "created_at desc", 1, v1=True)
            await _timed(stats, key, call)
        else:
            seen: list[str] = []
            token = ""
            for _page in range(PAGED_TASKS // PAGE_SIZE + 2):
                if time.monotonic() >= deadline:
                    break  # a walk cut short by the end of the soak is not checked
                call = doors.list(door, PAGED_FILTER, "created_at desc", PAGE_SIZE, token)
                page = await _timed(stats, key, call)
                if page is None:
                    break
                ids, token = page
                seen += ids
                if not token:
                    if len(seen) != len(set(seen)) or set(seen) != paged:
                        stats.error(key, 0.0, f"walk returned {len(seen)} ids, not the seeded set")
                    break


async def recorder(
    stats: Stats, server_pid: int, start: float, duration: float, every: float
) -> None:
    """One row per `every` seconds of the load; calls still finishing after the last row are
    in the totals only."""
    for index in range(1, max(1, math.ceil(duration / every)) + 1):
        await asyncio.sleep(max(0.0, start + index * every - time.monotonic()))
        window, stats.window = stats.window, Window()
        latencies = sorted(window.latencies)
        rss = memory_kib(server_pid).get("VmRSS", 0)
        row: dict[str, object] = {
            "t": round(time.monotonic() - start, 1),
            "requests": dict(window.requests),
            "errors": sum(window.errors.values()),
            "p50_ms": round(_percentile(latencies, 0.50) * 1e3, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1e3, 2),
            "rss_kib": rss,
        }
        stats.windows.append(row)
        log(
            f"t={row['t']:>6}s  req={len(latencies):>6} ({len(latencies) / every:.0f}/s)  "
            f"errors={row['errors']}  p50={row['p50_ms']}ms  p99={row['p99_ms']}ms  "
            f"rss={rss / 1024:.1f}MiB"
        )


async def seed(doors: Doors) -> set[str]:
    ids = set()
    for i in range(PAGED_TASKS):
        fields = {
            "namespace": PAGED_NAMESPACE,
            "pipelineName": f"namespace/{PAGED_NAMESPACE}/pipeline/paged",
            "runId": "run-paged",
            "mlmdExecutionID": str(i),
            "fingerprint": f"paged-{i}",
        }
        ids.add(await doors.create("rest" if i % 2 else "grpc", fields))
    return ids


async def check_acknowledged(dsn: str, ids: list[str]) -> tuple[dict[str, int], str]:
    """How many acknowledged ids are in the table once, more than once, not at all."""
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        rows = await connection.fetch(
            "SELECT id, count(*) AS n FROM tasks WHERE id = ANY($1::text[]) GROUP BY id",
            ids,
            timeout=120,
        )
        server_version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    counts = {str(r["id"]): int(r["n"]) for r in rows}
    return {
        "acknowledged": len(ids),
        "distinct_acknowledged": len(set(ids)),
        "present_once": sum(1 for i in set(ids) if counts.get(i) == 1),
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "missing": sum(1 for i in set(ids) if i not in counts),
    }, str(server_version)


async def soak(args: argparse.Namespace, server_pid: int, dsn: str) -> tuple[Stats, dict[str, int]]:
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=args.workers)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as channel,
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        ) as http,
    ):
        doors = Doors(channel, http)
        log(f"seeding {PAGED_TASKS} tasks in namespace {PAGED_NAMESPACE}")
        paged = await seed(doors)
        log(f"soak: {args.workers} workers for {args.duration}s, mix {MIX}, both doors")
        start = time.monotonic()
        deadline = start + args.duration
        workers = [worker(n, doors, stats, deadline, paged) for n in range(args.workers)]
        record = recorder(stats, server_pid, start, args.duration, args.window)
        await asyncio.gather(record, *workers)
        stats.wall = time.monotonic() - start
    integrity, stats.postgres = await check_acknowledged(dsn, stats.acknowledged)
    return stats, integrity


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in ("taskgate", "grpcio", "aiohttp", "asyncpg", "protobuf"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "?"
    return found


def memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def report(
    args: argparse.Namespace,
    stats: Stats,
    integrity: dict[str, int],
    info: dict[str, str],
    loadavg: tuple[str, str],
) -> str:
    wall = stats.wall
    rss = [int(w["rss_kib"]) for w in stats.windows if w["rss_kib"]]  # type: ignore[call-overload]
    first, last, peak = (rss[0], rss[-1], max(rss)) if rss else (0, 0, 0)
    growth = 100.0 * (last - first) / first if first else float("nan")
    total_errors = sum(stats.errors.values())
    all_latencies = sorted(v for values in stats.latencies.values() for v in values)
    total = len(all_latencies)
    lost = integrity["missing"] + integrity["duplicated"]
    rows = []
    for key in sorted(stats.requests):
        values = sorted(stats.latencies[key])
        rows.append(
            (
                key,
                stats.requests[key],
                f"{stats.requests[key] / wall:.1f}",
                stats.errors[key],
                f"{_percentile(values, 0.5) * 1e3:.1f}",
                f"{_percentile(values, 0.99) * 1e3:.1f}",
            )
        )
    rows.append(
        (
            "**all**",
            total,
            f"{total / wall:.1f}",
            total_errors,
            f"{_percentile(all_latencies, 0.5) * 1e3:.1f}",
            f"{_percentile(all_latencies, 0.99) * 1e3:.1f}",
        )
    )
    window_rows = [
        (
            w["t"],
            sum(w["requests"].values()),  # type: ignore[attr-defined]
            w["errors"],
            w["p50_ms"],
            w["p99_ms"],
            f"{int(w['rss_kib']) / 1024:.1f}",  # type: ignore[call-overload]
        )
        for w in stats.windows
    ]
    verdict = (
        "PASS"
        if total_errors == 0 and growth < 10.0 and lost == 0 and integrity["acknowledged"]
        else "FAIL"
    )
    ver = versions()
    lines = [
        f"# Soak {info['date']}: {verdict}",
        "",
        f"- machine: nproc {info['nproc']}, {info['cpu']}, {memory_total()} RAM, "
        f"kernel {info['kernel']}",
        f"- load average at start {loadavg[0]}, at end {loadavg[1]} (1/5/15 min; the soak "
        f"itself keeps about {args.workers} calls in flight on {info['nproc']} cores)",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in ver.items())
        + f", PostgreSQL {stats.postgres}",
        f"- database: {'--database-url' if args.database_url else 'embedded, fresh data dir'}",
        f"- load: {args.workers} workers in one asyncio process, for {wall:.0f} s, mix "
        + ", ".join(f"{k} {v}" for k, v in MIX.items())
        + f" (each split evenly between gRPC and REST); paging walks {PAGED_TASKS} seeded "
        f"tasks {PAGE_SIZE} a page",
        "",
        "## Totals",
        "",
        table(["kind/door", "requests", "req/s", "errors", "p50 ms", "p99 ms"], rows),
        "",
        f"- errors: {total_errors}" + ("" if not stats.first_errors else ", first ones:"),
        *[f"  - `{message}`" for message in stats.first_errors],
        f"- server RSS (VmRSS of the taskgate process, every {args.window:g} s): first "
        f"{first / 1024:.1f} MiB, last {last / 1024:.1f} MiB, max {peak / 1024:.1f} MiB, "
        f"growth {growth:+.1f}%",
        f"- acknowledged CreateTask: {integrity['acknowledged']} "
        f"({integrity['distinct_acknowledged']} distinct ids); present exactly once "
        f"{integrity['present_once']}, missing {integrity['missing']}, duplicated "
        f"{integrity['duplicated']} (one SQL query over every id)",
        "",
        f"## Every {args.window:g} s",
        "",
        table(["t s", "requests", "errors", "p50 ms", "p99 ms", "RSS MiB"], window_rows),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--workers", type=int, default=16, help="calls in flight (default 16)")
    parser.add_argument("--window", type=float, default=10.0, help="recording interval, s")
    parser.add_argument("--database-url", help="external PostgreSQL instead of an embedded one")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the server's --log-level (default INFO, as shipped: one access line per call)",
    )
    args = parser.parse_args()
    if not 1 <= args.workers <= 256 or not 1 <= args.duration <= 24 * 3600:
        parser.error("--workers 1..256, --duration 1..86400")

    info = machine()
    loadavg_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    home = Path(tempfile.mkdtemp(prefix="taskgate-soak-"))
    home.chmod(0o755)  # as root, the embedded PostgreSQL runs as another user
    argv = [
        shutil.which("taskgate") or "taskgate",
        "serve",
        "--grpc-address", f"127.0.0.1:{GRPC_PORT}",
        "--http-address", f"127.0.0.1:{REST_PORT}",
        "--log-level", args.log_level,
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("TASKGATE_DATABASE_URL", None)
    if args.database_url:
        env["TASKGATE_DATABASE_URL"] = args.database_url
    else:
        argv += ["--data-dir", str(home / "data")]
    try:
        with Procs() as procs:
            server = procs.start("soak-taskgate", argv, env=env)
            wait_http(REST_PORT, "/healthz", timeout=120)
            if args.database_url:
                dsn = args.database_url
            else:
                pid_info = read_postmaster_pid(home / "data" / "pgdata")
                if pid_info is None:
                    raise RuntimeError("no postmaster.pid under the data dir")
                socket_dir = quote(pid_info.socket_dir, safe="/")
                dsn = f"postgresql://postgres@/postgres?host={socket_dir}&port={pid_info.port}"
            stats, integrity = asyncio.run(soak(args, server.pid, dsn))
            if server.poll() is not None:
                raise RuntimeError(f"taskgate serve exited during the soak: {server.returncode}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    loadavg_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(args, stats, integrity, info, (loadavg_start, loadavg_end))
    save_json("soak", {"windows": stats.windows, "integrity": integrity, "machine": info})
    out = BENCH / "results" / f"soak-{time.strftime('%Y%m%dT%H%M%S')}.md"
    out.write_text(text)
    print(text)
    log(f"wrote {out.relative_to(BENCH.parent)} (raw in {RAW.relative_to(BENCH.parent)})")
    return 0 if text.splitlines()[0].endswith("PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
