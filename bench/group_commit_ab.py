"""A/B of group commit (decision P34): `taskgate serve` with and without the CreateTask batcher,
side by side on one database, alternating, so both share the machine's noise.

    flock /tmp/taskgate-bench.lock python bench/group_commit_ab.py [--rounds 3] [--duration 5]
        [--variants off,on,on-2,on-4] [--cells REST:32,REST:1,gRPC:32,gRPC:1]

Variants (each a `taskgate serve` as shipped otherwise: `--workers 1`, access log at INFO to
bench/results/raw/<variant>.log, metrics, limits), started through this script's `serve`
subcommand, which sets the store up before running the real command:

  off    every CreateTask its own single-row INSERT (the store before P34)
  on     as shipped: group commit, one INSERT batch in flight (store.task_store's defaults)
  on-N   group commit with N batches in flight at once

`on-1` is `on` again (a second server of the same code: the spread between two servers).

Each round runs every cell once for every variant, back to back, in a rotated order (round r
starts with variant r): REST POST /apis/v1alpha1/tasks (bench/post.lua) with `wrk -t1 -c32`
and `-c1`, and gRPC CreateTask (bench/_load.py's client: 2 processes at -c32, 1 at -c1), each
after a 1 s warm-up, on an emptied table. Per run: req/s, p50/p99, errors, CPU µs per request of
the server and of the database's backends (/proc), the machine's busy cores, and rows per
INSERT (requests / the server's pool acquisitions, from /metrics). Raw figures go to
bench/results/raw/group_commit-*.json; the table is printed. The database is its own,
`taskgate_bench_gc` (or $BENCH_DB).

    flock /tmp/taskgate-bench.lock python bench/group_commit_ab.py lone [--rounds 8]
        [--calls 2000]

measures what group commit costs a call that overlaps no other (the -c1 case) without the
servers' noise: `calls` sequential TaskStore.create_task in this one process, as shipped and
as the single-row INSERT, alternating rounds; CPU and wall µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("BENCH_DB", "taskgate_bench_gc")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/'s scripts import _harness

from _harness import (
    BENCH,
    DB_URL,
    TASKS_PATH,
    CpuMeter,
    Procs,
    backend_pids,
    ensure_postgres,
    fresh_database,
    http_request,
    log,
    machine,
    psql,
    save_json,
    stop_postgres_if,
    table,
    wait_http,
    wrk,
)
from _load import grpc_load
from grpc_load import METHODS, request_bytes

CELLS = "REST:32,REST:1,gRPC:32,gRPC:1"


def cells(text: str) -> list[tuple[str, int]]:
    """Door and connections of each cell: "REST:32,gRPC:1" gives [("REST", 32), ("gRPC", 1)]."""
    return [(door, int(conns)) for door, _, conns in (c.partition(":") for c in text.split(","))]


ACQUIRES = re.compile(r"^taskgate_db_pool_acquire_seconds_count (\S+)$", re.MULTILINE)


def serve(variant: str, argv: list[str]) -> int:
    """`taskgate serve ARGV` with the store set up as `variant` says (see the module)."""
    from taskgate.cli import main
    from taskgate.store import task_store
    from taskgate.store.records import NewTask, TaskRecord

    if variant == "off":

        async def create_task(self: task_store.TaskStore, new_task: NewTask) -> TaskRecord:
            return await self._insert_one(str(uuid.uuid4()), new_task)

        task_store.TaskStore.create_task = create_task  # type: ignore[method-assign]
    elif variant != "on":
        task_store.MAX_BATCHES_IN_FLIGHT = int(variant.removeprefix("on-"))
    return main(["serve", *argv])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    variant: str
    pid: int
    grpc_port: int
    http_port: int


def start(procs: Procs, variant: str) -> Server:
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    proc = procs.start(
        variant,
        [sys.executable, str(Path(__file__).resolve()), "serve", variant, "--",
         "--grpc-address", f"127.0.0.1:{grpc_port}", "--http-address", f"127.0.0.1:{http_port}",
         "--database-url", DB_URL],
        env=env,
    )  # fmt: skip
    wait_http(http_port, "/healthz", timeout=120)
    return Server(variant, proc.pid, grpc_port, http_port)


def acquisitions(server: Server) -> float:
    status, body = http_request("GET", server.http_port, "/metrics")
    match = ACQUIRES.search(body.decode())
    if status != 200 or match is None:
        raise RuntimeError(f"no pool metric from {server.variant}: {status}")
    return float(match.group(1))


def one_run(server: Server, door: str, conns: int, duration: int) -> dict[str, object]:
    psql("TRUNCATE tasks")
    url = f"http://127.0.0.1:{server.http_port}{TASKS_PATH}"
    target = f"127.0.0.1:{server.grpc_port}"
    payload = request_bytes("create")
    processes = 2 if conns > 1 else 1
    load: Callable[[int], tuple[int, float, float, float, int]]
    if door == "REST":

        def load(seconds: int) -> tuple[int, float, float, float, int]:
            result = wrk(url, conns, f"{seconds}s", BENCH / "post.lua")
            return result.requests, result.rps, result.p50_ms, result.p99_ms, result.errors

    else:

        def load(seconds: int) -> tuple[int, float, float, float, int]:
            result = grpc_load(target, METHODS["create"], payload, conns, seconds, processes)
            return result.calls, result.rps, result.p50_ms, result.p99_ms, result.errors

    load(1)  # warm-up, outside the meter
    acquired = acquisitions(server)
    meter = CpuMeter({"server": [server.pid], "postgres": backend_pids})
    requests, rps, p50, p99, errors = load(duration)
    used = meter.stop()
    statements = acquisitions(server) - acquired  # INSERTs (and the odd readiness ping)
    per = max(requests, 1)
    return {
        "variant": server.variant, "door": door, "conns": conns, "requests": requests,
        "rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors,
        "server_us": used["server"] / per * 1e6, "postgres_us": used["postgres"] / per * 1e6,
        "cores_busy": used["machine"] / used["wall"],
        "rows_per_insert": requests / max(statements, 1),
    }  # fmt: skip


def run(args: argparse.Namespace) -> None:
    variants: list[str] = args.variants.split(",")
    info = machine()
    pg_started = ensure_postgres()
    fresh_database()
    runs: list[dict[str, object]] = []
    try:
        with Procs() as procs:
            servers = [start(procs, variant) for variant in variants]
            for rnd in range(1, args.rounds + 1):
                first = (rnd - 1) % len(servers)
                order = servers[first:] + servers[:first]
                for door, conns in cells(args.cells):
                    for server in order:
                        row = {"round": rnd, **one_run(server, door, conns, args.duration)}
                        runs.append(row)
                        log(
                            f"round {rnd} {door} -c{conns} {server.variant}: {row['rps']:.0f}/s"
                            f" p50 {row['p50_ms']:.2f} p99 {row['p99_ms']:.2f} ms, server"
                            f" {row['server_us']:.0f} µs, pg {row['postgres_us']:.0f} µs,"
                            f" rows/INSERT {row['rows_per_insert']:.1f}"
                        )
    finally:
        stop_postgres_if(pg_started)
    report = {"machine": info, "args": vars(args), "runs": runs}
    path = save_json("group_commit", report)
    print(render(report, variants, cells(args.cells)))
    log(f"raw figures: {path}")


async def lone_costs(rounds: int, calls: int) -> dict[str, list[tuple[float, float]]]:
    """(CPU µs, wall µs) per call of `calls` sequential creates, per round, in-process."""
    from taskgate.store import NewTask, TaskStore, pool_context

    task = NewTask(
        namespace="ns1", pipeline_name="namespace/ns1/pipeline/bench", run_id="run-bench",
        mlmd_execution_id="7", created_at=1_704_164_645, finished_at=0, fingerprint="fp-bench",
    )  # fmt: skip
    costs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    async with pool_context(DB_URL) as pool:
        store = TaskStore(pool)
        creates = {
            "off": lambda: store._insert_one(str(uuid.uuid4()), task),
            "on": lambda: store.create_task(task),
        }
        for rnd in range(rounds):
            for variant in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
                await pool.execute("TRUNCATE tasks")
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    await creates[variant]()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                costs[variant].append((cpu / calls * 1e6, wall / calls * 1e6))
                log(f"lone round {rnd + 1} {variant}: {costs[variant][-1][0]:.1f} µs CPU,"
                    f" {costs[variant][-1][1]:.1f} µs wall per call")  # fmt: skip
    return costs


def lone(argv: list[str]) -> None:
    """The cost of group commit to a call that overlaps no other (the -c1 case), without the
    servers' noise: sequential TaskStore.create_task in this process, alternating rounds."""
    parser = argparse.ArgumentParser(prog="group_commit_ab.py lone")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    pg_started = ensure_postgres()
    fresh_database()
    try:
        subprocess.run([sys.executable, "-m", "taskgate", "migrate", "--database-url", DB_URL],
                       check=True, timeout=120, capture_output=True)  # fmt: skip
        costs = asyncio.run(lone_costs(args.rounds, args.calls))
    finally:
        stop_postgres_if(pg_started)
    save_json("group_commit_lone", {"machine": machine(), "args": vars(args), "costs": costs})
    for variant, rows in costs.items():
        cpu = statistics.median(row[0] for row in rows)
        wall = statistics.median(row[1] for row in rows)
        print(f"{variant}: median {cpu:.1f} µs CPU, {wall:.1f} µs wall per call"
              f" (CPU {min(r[0] for r in rows):.1f}–{max(r[0] for r in rows):.1f})")  # fmt: skip


def render(report: dict[str, object], variants: list[str], measured: list[tuple[str, int]]) -> str:
    runs = report["runs"]
    assert isinstance(runs, list)  # noqa: S101
    every = table(
        ["round", "door", "conns", "variant", "req/s", "p50 / p99 ms", "errors",
         "server µs/req", "postgres µs/req", "rows/INSERT", "cores busy"],
        [[r["round"], r["door"], f"-c{r['conns']}", r["variant"], f"{r['rps']:.0f}",
          f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}", r["errors"], f"{r['server_us']:.0f}",
          f"{r['postgres_us']:.0f}", f"{r['rows_per_insert']:.1f}", f"{r['cores_busy']:.2f}"]
         for r in runs],
    )  # fmt: skip
    summary = []
    for door, conns in measured:
        for variant in variants:
            key = (door, conns, variant)
            cell = [r for r in runs if (r["door"], r["conns"], r["variant"]) == key]
            rps = [float(r["rps"]) for r in cell]
            summary.append([
                door, f"-c{conns}", variant,
                f"{statistics.median(rps):.0f} ({min(rps):.0f}–{max(rps):.0f})",
                f"{statistics.median(float(r['p50_ms']) for r in cell):.2f}",
                f"{statistics.median(float(r['p99_ms']) for r in cell):.2f}"
                f" ({min(float(r['p99_ms']) for r in cell):.2f}–"
                f"{max(float(r['p99_ms']) for r in cell):.2f})",
                f"{statistics.median(float(r['server_us']) for r in cell):.0f}",
                f"{statistics.median(float(r['postgres_us']) for r in cell):.0f}",
                f"{statistics.median(float(r['rows_per_insert']) for r in cell):.1f}",
            ])  # fmt: skip
    medians = table(
        ["door", "conns", "variant", "req/s median (range)", "p50 ms", "p99 ms median (range)",
         "server µs/req", "postgres µs/req", "rows/INSERT"],
        summary,
    )  # fmt: skip
    return f"Medians over the rounds:\n\n{medians}\n\nEvery run:\n\n{every}\n"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "serve":  # serve VARIANT -- SERVE ARGS
        rest = sys.argv[3:]
        sys.exit(serve(sys.argv[2], rest[1:] if rest[:1] == ["--"] else rest))
    if len(sys.argv) > 1 and sys.argv[1] == "lone":
        lone(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--variants", default="off,on,on-2,on-4")
    parser.add_argument("--cells", default=CELLS, help="door:connections, comma-separated")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
