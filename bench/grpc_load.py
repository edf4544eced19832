"""A grpc.aio load generator: N in-flight unary calls for D seconds, from one process.

One channel (one HTTP/2 connection, as grpc-gateway uses), N tasks each looping
"call, await reply"; requests are pre-serialized bytes and replies are not parsed, so the
client spends as little CPU as grpc.aio allows. The client shares the machine's cores with
the server, so its own CPU is reported too.

Single run against any server:
    python bench/grpc_load.py run --target 127.0.0.1:8887 --method list|create \\
        [--concurrency 32] [--duration 10] [--warmup 1] [--server-pid PID]

Suite (starts taskgate serve on the machine's PG15 and bench/noop_grpc.py, stops both):
    python bench/grpc_load.py suite [--repeat 2] [--duration 10]
      ListTasks(page_size=10) with 20 seeded tasks (reseeded before each taskgate run) and
      CreateTask (the peer's post.lua task) at -c32 and -c1, taskgate vs the no-op ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc
from _harness import (
    BENCH,
    RAW,
    CpuMeter,
    Procs,
    backend_pids,
    ensure_postgres,
    fresh_database,
    log,
    machine,
    memory_kib,
    reseed,
    save_json,
    start_taskgate,
    stop_postgres_if,
    table,
)

from taskgate.api import task_pb2

METHODS = {
    "list": "/api.TaskService/ListTasks",
    "create": "/api.TaskService/CreateTask",
}
GRPC_PORT, REST_PORT, NOOP_PORT = 19887, 19888, 19891


def request_bytes(method: str) -> bytes:
    if method == "list":
        return task_pb2.ListTasksRequest(page_size=10).SerializeToString()
    task = task_pb2.Task(
        namespace="ns1", pipelineName="namespace/ns1/pipeline/bench", runId="run-bench",
        mlmdExecutionID="7", fingerprint="fp-bench",
    )  # fmt: skip
    task.created_at.FromJsonString("2024-01-02T03:04:05Z")
    return task_pb2.CreateTaskRequest(task=task).SerializeToString()


async def load(
    target: str, method: str, concurrency: int, duration: float, warmup: float
) -> dict[str, float]:
    payload = request_bytes(method)
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHODS[method])  # bytes in, bytes out
        await call(payload, timeout=10)
        latencies: list[float] = []
        errors = 0
        measuring = False
        stop_at = 0.0

        async def worker() -> None:
            nonlocal errors
            while True:
                start = time.perf_counter()
                if start >= stop_at and measuring:
                    return
                try:
                    await call(payload, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - start)

        stop_at = time.perf_counter() + warmup + duration
        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(n - 1, int(q * n))] * 1e3 if n else float("nan")

    return {
        "calls": n, "seconds": elapsed, "calls_per_s": n / elapsed, "errors": errors,
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        "client_cpu_us_per_call": client_cpu / max(n, 1) * 1e6,
    }  # fmt: skip


def measured(
    target: str, method: str, concurrency: int, duration: float, warmup: float,
    pids: dict[str, list[int]], with_postgres: bool = False,
) -> dict[str, object]:  # fmt: skip
    # Warm up in a separate run, so the meter covers exactly the measured calls.
    asyncio.run(load(target, method, concurrency, warmup, 0.0))
    groups: dict[str, object] = dict(pids)
    if with_postgres:  # sampled at start and stop: the pool opens and replaces connections
        groups["postgres"] = backend_pids
    meter = CpuMeter(groups)  # type: ignore[arg-type]
    result = asyncio.run(load(target, method, concurrency, duration, 0.0))
    used = meter.stop()
    calls = max(int(result["calls"]), 1)
    per_call = {
        name: round(seconds / calls * 1e6)
        for name, seconds in used.items()
        if name not in ("wall", "machine")
    }
    return {**result, "server_cpu_us_per_call": per_call, "machine_cores_busy": used["machine"]
            / used["wall"]}  # fmt: skip


def suite(args: argparse.Namespace) -> None:
    info = machine()
    pg_started = ensure_postgres()
    fresh_database()
    runs: list[dict[str, object]] = []
    memory: dict[str, object] = {}
    try:
        with Procs() as procs:
            tg = start_taskgate(procs, GRPC_PORT, REST_PORT)
            memory["idle"] = memory_kib(tg.pid)
            reseed(REST_PORT)
            list_file, create_file = RAW / "list_response.pb", RAW / "create_response.pb"
            list_file.write_bytes(asyncio.run(one_call(f"127.0.0.1:{GRPC_PORT}", "list")))
            create_file.write_bytes(asyncio.run(one_call(f"127.0.0.1:{GRPC_PORT}", "create")))
            noop = procs.start(
                "noop_grpc",
                [sys.executable, str(BENCH / "noop_grpc.py"), "--port", str(NOOP_PORT),
                 "--list-response", str(list_file), "--create-response", str(create_file)],
            )  # fmt: skip
            time.sleep(1.5)
            targets = {
                "taskgate": (f"127.0.0.1:{GRPC_PORT}", {"taskgate": [tg.pid]}),
                "noop_grpc": (f"127.0.0.1:{NOOP_PORT}", {"noop_grpc": [noop.pid]}),
            }
            for rep in range(1, args.repeat + 1):
                for method in ("list", "create"):
                    for conns in (args.concurrency, 1):
                        duration = args.duration if conns > 1 else args.latency_duration
                        for name, (target, pids) in targets.items():
                            if name == "taskgate":
                                reseed(REST_PORT)
                            result = measured(
                                target, method, conns, duration, 1.0, pids, name == "taskgate"
                            )
                            row = {"rep": rep, "method": method, "conns": conns,
                                   "target": name, **result}  # fmt: skip
                            runs.append(row)
                            log(
                                f"rep {rep} {method} c{conns} {name}: "
                                f"{result['calls_per_s']:.0f}/s p50 {result['p50_ms']:.2f} "
                                f"p99 {result['p99_ms']:.2f} ms cpu "
                                f"{result['server_cpu_us_per_call']} client "
                                f"{result['client_cpu_us_per_call']:.0f}"
                            )
            memory["after_runs"] = memory_kib(tg.pid)
    finally:
        stop_postgres_if(pg_started)
    report = {"machine": info, "runs": runs, "memory_kib": memory}
    path = save_json("grpc", report)
    print(render(report))
    log(f"raw figures: {path}")


async def one_call(target: str, method: str) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await channel.unary_unary(METHODS[method])(request_bytes(method), timeout=10)
        assert isinstance(reply, bytes)  # noqa: S101 - no deserializer given
        return reply


def render(report: dict[str, object]) -> str:
    runs = report["runs"]
    assert isinstance(runs, list)  # noqa: S101
    rows = [
        [r["rep"], r["method"], f"-c{r['conns']}", r["target"], f"{r['calls_per_s']:.0f}",
         f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}", r["errors"],
         ", ".join(f"{k} {v}" for k, v in r["server_cpu_us_per_call"].items()),
         f"{r['client_cpu_us_per_call']:.0f}", f"{r['machine_cores_busy']:.2f}"]
        for r in runs
    ]  # fmt: skip
    out = [table(["rep", "method", "conns", "target", "calls/s", "p50 / p99 ms", "errors",
                  "server CPU µs/call", "client CPU µs/call", "cores busy"], rows)]  # fmt: skip
    by_key = {(r["rep"], r["method"], r["conns"], r["target"]): r for r in runs}
    ratios = [
        [rep, method, f"-c{conns}",
         f"{r['calls_per_s'] / by_key[(rep, method, conns, 'noop_grpc')]['calls_per_s']:.2f}"]
        for (rep, method, conns, target), r in by_key.items()
        if target == "taskgate"
    ]  # fmt: skip
    out += ["", table(["rep", "method", "conns", "taskgate/no-op calls/s"], ratios)]
    out += ["", f"taskgate memory (KiB): {report['memory_kib']}"]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="grpc.aio load generator")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="one load run against --target")
    one.add_argument("--target", required=True)
    one.add_argument("--method", choices=sorted(METHODS), default="list")
    one.add_argument("--concurrency", type=int, default=32)
    one.add_argument("--duration", type=float, default=10.0)
    one.add_argument("--warmup", type=float, default=1.0)
    one.add_argument("--server-pid", type=int, action="append", default=[])
    all_runs = sub.add_parser("suite", help="taskgate vs the no-op grpc.aio server")
    all_runs.add_argument("--repeat", type=int, default=2)
    all_runs.add_argument("--concurrency", type=int, default=32)
    all_runs.add_argument("--duration", type=float, default=10.0)
    all_runs.add_argument("--latency-duration", type=float, default=5.0)
    args = parser.parse_args()
    if args.command == "suite":
        suite(args)
        return
    result = measured(
        args.target, args.method, args.concurrency, args.duration, args.warmup,
        {"server": args.server_pid},
    )  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
