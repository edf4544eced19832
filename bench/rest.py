"""REST throughput/latency: taskgate's own REST door vs the grpc-gateway peer vs bare aiohttp.

Starts (all on 127.0.0.1, all stopped by PID at the end):
  taskgate serve   gRPC :19887, REST :19888 (in-process invoker), on the machine's PG15
  gw               the Go grpc-gateway peer, REST :19889 -> taskgate gRPC :19887
  noop_aiohttp.py  REST :19890, answers from memory with taskgate's own reply bytes

and runs, per repetition, for GET /apis/v1alpha1/tasks?page_size=10 (20 seeded tasks; the
table is emptied and reseeded before every taskgate/peer run) and POST (the peer's post.lua
body): wrk -t1 -c32 -d10s, then wrk -t1 -c1 -d5s, the three targets one after another.
CPU µs/req per process comes from /proc/PID/stat (utime+stime) before/after each wrk run;
"postgres" is the CPU of the backends connected to the bench database.

    python bench/rest.py [--repeat 2] [--duration 10s] [--latency-duration 5s]
                         [--gomaxprocs 1] [--profile] [--out bench/results/raw]

--profile adds one extra GET -c32 run on taskgate's REST door under py-spy (200 Hz) and
prints the top functions by own and by inclusive samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from _harness import (
    BENCH,
    GW_BIN,
    POST_BODY,
    RAW,
    TASKS_PATH,
    CpuMeter,
    Procs,
    backend_pids,
    ensure_postgres,
    fresh_database,
    http_request,
    log,
    machine,
    memory_kib,
    reseed,
    save_json,
    start_taskgate,
    stop_postgres_if,
    table,
    wait_http,
    wrk,
)

GRPC_PORT, TG_PORT, GW_PORT, NOOP_PORT = 19887, 19888, 19889, 19890
LIST_QUERY = TASKS_PATH + "?page_size=10"


def main() -> None:
    parser = argparse.ArgumentParser(description="REST: taskgate vs grpc-gateway vs aiohttp")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--latency-duration", default="5s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--gomaxprocs", default="1", help="GOMAXPROCS for gw ('' = Go default)")
    parser.add_argument("--profile", action="store_true", help="py-spy one GET run on taskgate")
    args = parser.parse_args()

    info = machine()
    pg_started = ensure_postgres()
    fresh_database()
    try:
        with Procs() as procs:
            report = run(procs, args)
    finally:
        stop_postgres_if(pg_started)
    report["machine"] = info
    report["postgres"] = "the machine's PostgreSQL 15 (127.0.0.1:5432), database taskgate_bench"
    path = save_json("rest", report)
    print(render(report))
    log(f"raw figures: {path}")


def run(procs: Procs, args: argparse.Namespace) -> dict[str, object]:
    tg = start_taskgate(procs, GRPC_PORT, TG_PORT)
    time.sleep(2)
    memory = {"idle": memory_kib(tg.pid)}
    reseed(TG_PORT)
    list_body = RAW / "list_body.json"
    create_body = RAW / "create_body.json"
    list_body.write_bytes(http_request("GET", TG_PORT, LIST_QUERY)[1])
    status, reply = http_request("POST", TG_PORT, TASKS_PATH, POST_BODY)
    if status != 200:
        raise RuntimeError(f"POST failed: {status} {reply[:300]!r}")
    create_body.write_bytes(reply)
    log(f"GET body {list_body.stat().st_size} B, POST reply {len(reply)} B")

    env = dict(os.environ)
    if args.gomaxprocs:
        env["GOMAXPROCS"] = args.gomaxprocs
    gw = procs.start(
        "gw",
        [str(GW_BIN), "-http", f"127.0.0.1:{GW_PORT}", "-upstream", f"127.0.0.1:{GRPC_PORT}"],
        env=env,
    )
    noop = procs.start(
        "noop_aiohttp",
        [sys.executable, str(BENCH / "noop_aiohttp.py"), "--port", str(NOOP_PORT),
         "--list-body", str(list_body), "--create-body", str(create_body)],
    )  # fmt: skip
    wait_http(GW_PORT, LIST_QUERY)
    wait_http(NOOP_PORT, LIST_QUERY)
    targets = {
        "taskgate": (TG_PORT, {"taskgate": [tg.pid]}),
        "peer": (GW_PORT, {"gw": [gw.pid], "taskgate": [tg.pid]}),
        "aiohttp": (NOOP_PORT, {"aiohttp": [noop.pid]}),
    }
    for name, (port, _) in targets.items():  # warm-up: pools, caches, JIT-free but lazy imports
        log(f"warm-up {name}")
        wrk(f"http://127.0.0.1:{port}{LIST_QUERY}", args.connections, "2s")
    memory["after_warmup"] = memory_kib(tg.pid)

    runs: list[dict[str, object]] = []
    lua = Path(__file__).parent / "post.lua"
    for rep in range(1, args.repeat + 1):
        for op in ("GET", "POST"):
            for conns, duration in ((args.connections, args.duration), (1, args.latency_duration)):
                for name, (port, pids) in targets.items():
                    uses_db = name != "aiohttp"
                    if uses_db:
                        reseed(TG_PORT)
                    groups: dict[str, object] = dict(pids)
                    if uses_db:
                        groups["postgres"] = backend_pids
                    meter = CpuMeter(groups)  # type: ignore[arg-type]
                    path = LIST_QUERY if op == "GET" else TASKS_PATH
                    result = wrk(
                        f"http://127.0.0.1:{port}{path}",
                        conns,
                        duration,
                        lua if op == "POST" else None,
                    )
                    used = meter.stop()
                    row = {
                        "rep": rep, "op": op, "conns": conns, "target": name,
                        "requests": result.requests, "rps": result.rps,
                        "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors,
                        "cpu_s": used,
                    }  # fmt: skip
                    runs.append(row)
                    log(
                        f"rep {rep} {op} c{conns} {name}: {result.rps:.0f} req/s "
                        f"p50 {result.p50_ms:.2f} p99 {result.p99_ms:.2f} ms, "
                        f"errors {result.errors}, cpu {_us_per_req(row)}"
                    )
    memory["after_runs"] = memory_kib(tg.pid)
    report: dict[str, object] = {
        "runs": runs,
        "memory_kib": memory,
        "gomaxprocs": args.gomaxprocs or "default",
        "get_body_bytes": list_body.stat().st_size,
    }
    if args.profile:
        reseed(TG_PORT)
        report["profile"] = profile(tg.pid, args.connections, args.duration)
        memory["after_profile"] = memory_kib(tg.pid)
    return report


def _us_per_req(row: dict[str, object]) -> str:
    cpu = row["cpu_s"]
    assert isinstance(cpu, dict)  # noqa: S101 - shape of our own dict
    n = max(int(str(row["requests"])), 1)
    return ", ".join(
        f"{k} {v / n * 1e6:.0f}" for k, v in cpu.items() if k not in ("wall", "machine")
    )


def _machine_busy(row: dict[str, object]) -> str:
    """Cores busy on the whole machine during the run (wrk + servers + anything else)."""
    cpu = row["cpu_s"]
    assert isinstance(cpu, dict)  # noqa: S101
    return f"{cpu['machine'] / cpu['wall']:.2f}"


def profile(pid: int, connections: int, duration: str) -> dict[str, object]:
    seconds = int(duration.rstrip("s"))
    raw = RAW / "pyspy-get.txt"
    log("profiling taskgate (py-spy) during a GET run")
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
         "--format", "raw", "-o", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        result = wrk(f"http://127.0.0.1:{TG_PORT}{LIST_QUERY}", connections, duration)
        spy.wait(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=10)
    return {"rps_under_profiler": result.rps, **top_functions(raw)}


def top_functions(raw: Path, limit: int = 15) -> dict[str, object]:
    """Own (leaf) and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    top = own.most_common(1)[0][0] if own else ""
    callers: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_short(frame) for frame in stack.split(";")] if stack else []
        if frames and frames[-1] == top:
            callers[" <- ".join(f.split(" (")[0] for f in reversed(frames[-4:-1]))] += int(
                count_text
            )
    return {
        "samples": total,
        "top_own_callers": [(c, n, round(100 * n / total, 1)) for c, n in callers.most_common(10)],
        "own": [(f, n, round(100 * n / total, 1)) for f, n in own.most_common(limit)],
        "inclusive": [(f, n, round(100 * n / total, 1)) for f, n in inclusive.most_common(40)],
    }


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({tail})"


def render(report: dict[str, object]) -> str:
    runs = report["runs"]
    assert isinstance(runs, list)  # noqa: S101
    rows = []
    for row in runs:
        rows.append(
            [row["rep"], row["op"], f"-c{row['conns']}", row["target"], f"{row['rps']:.0f}",
             f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f}", row["errors"], _us_per_req(row),
             _machine_busy(row)]
        )  # fmt: skip
    out = [
        table(
            [
                "rep",
                "op",
                "conns",
                "target",
                "req/s",
                "p50 / p99 ms",
                "errors",
                "CPU µs/req",
                "cores busy (machine)",
            ],
            rows,
        )
    ]
    ratio_rows = []
    by_key = {(r["rep"], r["op"], r["conns"], r["target"]): r for r in runs}
    for (rep, op, conns, target), row in by_key.items():
        if target != "taskgate":
            continue
        peer = by_key[(rep, op, conns, "peer")]
        ceiling = by_key[(rep, op, conns, "aiohttp")]
        ratio_rows.append(
            [rep, op, f"-c{conns}", f"{row['rps'] / peer['rps']:.2f}",
             f"{row['rps'] / ceiling['rps']:.2f}"]
        )  # fmt: skip
    out.append("")
    out.append(table(["rep", "op", "conns", "taskgate/peer req/s", "taskgate/aiohttp req/s"],
                     ratio_rows))  # fmt: skip
    out.append("")
    out.append(f"taskgate memory (KiB): {report['memory_kib']}")
    if "profile" in report:
        prof = report["profile"]
        assert isinstance(prof, dict)  # noqa: S101
        out.append(f"\npy-spy: {prof['samples']} samples, {prof['rps_under_profiler']:.0f} req/s")
        out.append(table(["own: function", "samples", "%"], prof["own"]))
        out.append("")
        out.append(table(["callers of the top own function", "samples", "%"],
                         prof["top_own_callers"]))  # fmt: skip
        out.append("")
        out.append(table(["inclusive: function", "samples", "%"], prof["inclusive"]))
    return "\n".join(out)


if __name__ == "__main__":
    main()
