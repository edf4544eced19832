"""`python -m bench`: the whole speed table of issue 12 in one command, ratios from one run.

    python -m bench [--quick | --tiny] [--database-url URL] [--results PATH|-] [--other-loop L]

Starts, on 127.0.0.1 (free ports; every process stopped by its PID):

  taskgate        `taskgate serve --workers 1` as shipped: metrics, access log (INFO, to a file),
                  limits and the tracing API (no SDK) on
  taskgate-w2     the same with `--workers 2`
  taskgate-quiet  the same with `--log-level WARNING` (no access lines): the access log's cost
  taskgate-<L>    the same with `--loop L` (default uvloop; the shipped default is asyncio)
  gw              the Go grpc-gateway peer (GOMAXPROCS=1) in front of taskgate's gRPC port
  noop_aiohttp    aiohttp answering taskgate's own reply bytes from memory (the REST ceiling)
  noop_grpc       grpc.aio answering taskgate's own reply bytes (the gRPC ceiling)

then, per repetition, runs every measurement once, back to back, so that every ratio compares
two runs a few seconds apart: REST CreateTask / ListTasks (page of 10) / the KFP driver's lookup
(three EQUALS predicates, `created_at desc`, page size 1) against taskgate, the peer and (for
the first two) the no-op; gRPC CreateTask / ListTasks against taskgate and the no-op with a
client split over processes; the variants above. Before each run that reads the database the
tasks table is emptied and reseeded, so every list returns the same rows. Then `bench/soak.py`
for the RSS row. It prints the table and replaces the section between the bench markers of
bench/RESULTS.md (other sections, such as bench/scale.py's, are kept).

Modes: full (wrk, 5 s runs, 2 repetitions, 60 s soak; ~6 min), `--quick` (3 s, 1 repetition,
20 s soak; ~2 min) and `--tiny` (a Python load client, fractions of a second, no peer, no
variants, no soak: what the test suite runs to prove the command works). Full and quick need
wrk, the peer binary and PostgreSQL 15 (started if down), as bench/README.md says.

A benchmark: nothing here asserts on time. Run it under the shared lock on a shared machine:
`flock /tmp/taskgate-bench.lock python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/'s scripts import _harness

from _harness import (
    BENCH,
    GW_BIN,
    PG_HOST,
    PG_PASSWORD,
    PG_PORT,
    POST_BODY,
    RAW,
    TASKS_PATH,
    CpuMeter,
    Procs,
    ensure_postgres,
    http_request,
    log,
    machine,
    memory_kib,
    stop_postgres_if,
    table,
    wait_http,
    wrk,
)

from bench._load import Load, grpc_load, http_load
from taskgate.api import task_pb2

RESULTS = BENCH / "RESULTS.md"
BEGIN_MARK = "<!-- bench: begin -->"
END_MARK = "<!-- bench: end -->"
PG_SERVER_URL = f"postgresql://postgres:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/postgres"
DATABASE = "taskgate_bench_main"
LIST_PATH = TASKS_PATH + "?page_size=10"
DRIVER_KEYS = {
    "pipelineName": "namespace/ns1/pipeline/bench",
    "fingerprint": "fp-bench",
    "namespace": "ns1",
}
DRIVER_FILTER = json.dumps(
    {"predicates": [{"op": "EQUALS", "key": k, "stringValue": v} for k, v in DRIVER_KEYS.items()]}
)
DRIVER_PATH = (
    f"{TASKS_PATH}?filter={quote(DRIVER_FILTER)}&sort_by={quote('created_at desc')}&page_size=1"
)
GRPC_LIST = "/api.TaskService/ListTasks"
GRPC_CREATE = "/api.TaskService/CreateTask"


@dataclass(frozen=True)
class Mode:
    name: str
    duration: float
    repeat: int
    concurrency: int
    soak: float
    client: str  # "wrk" or "python"
    grpc_processes: int
    peer: bool
    variants: bool


MODES = {
    "full": Mode("full", 5, 2, 32, 60, "wrk", 2, True, True),
    "quick": Mode("quick", 3, 1, 32, 20, "wrk", 2, True, True),
    "tiny": Mode("tiny", 0.3, 1, 4, 0, "python", 1, False, False),
}


# --- the database and the servers ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def _admin(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def fresh_database(server_url: str) -> str:
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{DATABASE}"'))
    return with_database(server_url, DATABASE)


@dataclass
class Server:
    name: str
    grpc_port: int
    http_port: int
    pids: Callable[[], list[int]]


def start_taskgate(procs: Procs, name: str, dsn: str, extra: list[str]) -> Server:
    grpc_port, http_port = free_port(), free_port()
    taskgate = shutil.which("taskgate") or "taskgate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    proc = procs.start(
        name,
        [taskgate, "serve", "--grpc-address", f"127.0.0.1:{grpc_port}",
         "--http-address", f"127.0.0.1:{http_port}", "--database-url", dsn, *extra],
        env=env,
    )  # fmt: skip
    wait_http(http_port, "/healthz", timeout=120)

    def pids() -> list[int]:  # the process and, with --workers, its children
        found = [proc.pid]
        for child in Path(f"/proc/{proc.pid}/task").glob("*/children"):
            found += [int(pid) for pid in child.read_text().split()]
        return found

    return Server(name, grpc_port, http_port, pids)


async def _truncate(dsn: str) -> None:
    await _admin(dsn, "TRUNCATE tasks")


def reseed(dsn: str, port: int) -> None:
    """20 tasks (page of 10 from them) and 5 that the driver's lookup matches."""
    asyncio.run(_truncate(dsn))
    for i in range(1, 26):
        task = {
            "namespace": "ns1",
            "pipelineName": f"p{i}",
            "runId": f"r{i}",
            "mlmdExecutionID": str(i),
            "fingerprint": f"f{i}",
            "created_at": f"2023-06-01T00:00:{i:02d}Z",
        }
        if i > 20:
            task.update(DRIVER_KEYS)
        status, reply = http_request("POST", port, TASKS_PATH, json.dumps(task))
        if status != 200:
            raise RuntimeError(f"seeding failed: {status} {reply[:300]!r}")


def grpc_payload(method: str) -> bytes:
    if method == GRPC_LIST:
        return task_pb2.ListTasksRequest(page_size=10).SerializeToString()
    task = task_pb2.Task(
        namespace="ns1", pipelineName="namespace/ns1/pipeline/bench", runId="run-bench",
        mlmdExecutionID="7", fingerprint="fp-bench",
    )  # fmt: skip
    task.created_at.FromJsonString("2024-01-02T03:04:05Z")
    return task_pb2.CreateTaskRequest(task=task).SerializeToString()


async def _one_grpc(port: int, method: str) -> bytes:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await channel.unary_unary(method)(grpc_payload(method), timeout=10)
    assert isinstance(reply, bytes)  # noqa: S101 - no deserializer given
    return reply


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    rep: int
    scenario: str
    target: str
    load: Load
    cpu_us: dict[str, float] = field(default_factory=dict)
    cores_busy: float = 0.0


def http_run(mode: Mode, port: int, kind: str) -> Load:
    path = {"list": LIST_PATH, "driver": DRIVER_PATH, "create": TASKS_PATH}[kind]
    url = f"http://127.0.0.1:{port}{path}"
    if mode.client == "python":
        body = POST_BODY.encode() if kind == "create" else None
        method = "POST" if kind == "create" else "GET"
        return http_load(url, method, body, mode.concurrency, mode.duration, warmup=0.1)
    lua = BENCH / "post.lua" if kind == "create" else None
    wrk(url, mode.concurrency, "1s", lua)  # warm-up, not measured
    result = wrk(url, mode.concurrency, f"{mode.duration:g}s", lua)
    return Load(result.requests, result.rps, result.p50_ms, result.p99_ms, result.errors)


def grpc_run(mode: Mode, port: int, method: str) -> Load:
    target, payload = f"127.0.0.1:{port}", grpc_payload(method)
    if mode.client != "python":
        grpc_load(target, method, payload, mode.concurrency, 1.0, mode.grpc_processes)
    return grpc_load(target, method, payload, mode.concurrency, mode.duration, mode.grpc_processes)


@dataclass
class Bench:
    mode: Mode
    dsn: str
    runs: list[Run] = field(default_factory=list)

    def measure(
        self, rep: int, scenario: str, target: str, pids: dict[str, Callable[[], list[int]]],
        run: Callable[[], Load], reseed_port: int | None,
    ) -> None:  # fmt: skip
        if reseed_port is not None:
            reseed(self.dsn, reseed_port)
        meter = CpuMeter(pids)  # type: ignore[arg-type]
        load = run()
        used = meter.stop()
        n = max(load.calls, 1)
        cpu = {k: v / n * 1e6 for k, v in used.items() if k not in ("wall", "machine")}
        busy = used["machine"] / used["wall"] if used["wall"] else 0.0
        self.runs.append(Run(rep, scenario, target, load, cpu, busy))
        log(
            f"rep {rep} {scenario} {target}: {load.rps:.0f}/s p50 {load.p50_ms:.2f} "
            f"p99 {load.p99_ms:.2f} ms errors {load.errors}"
        )

    def rps(self, scenario: str, target: str) -> list[float]:
        return [r.load.rps for r in self.runs if r.scenario == scenario and r.target == target]

    def p99(self, scenario: str, target: str) -> list[float]:
        return [r.load.p99_ms for r in self.runs if r.scenario == scenario and r.target == target]


def run_all(
    mode: Mode, dsn: str, loop_flag: str | None, procs: Procs
) -> tuple[Bench, dict[str, object]]:
    bench = Bench(mode, dsn)
    main = start_taskgate(procs, "taskgate", dsn, [])
    memory: dict[str, object] = {"idle": memory_kib(main.pids()[0])}
    variants: dict[str, Server] = {}
    if mode.variants:
        variants["workers 2"] = start_taskgate(procs, "taskgate-w2", dsn, ["--workers", "2"])
        variants["access log off"] = start_taskgate(
            procs, "taskgate-quiet", dsn, ["--log-level", "WARNING"]
        )
        if loop_flag is not None:
            variants[f"--loop {loop_flag}"] = start_taskgate(
                procs, f"taskgate-{loop_flag}", dsn, ["--loop", loop_flag]
            )
    reseed(dsn, main.http_port)
    RAW.mkdir(parents=True, exist_ok=True)
    list_body, create_body = RAW / "bench_list_body.json", RAW / "bench_create_body.json"
    list_body.write_bytes(http_request("GET", main.http_port, LIST_PATH)[1])
    create_body.write_bytes(http_request("POST", main.http_port, TASKS_PATH, POST_BODY)[1])
    list_pb, create_pb = RAW / "bench_list.pb", RAW / "bench_create.pb"
    list_pb.write_bytes(asyncio.run(_one_grpc(main.grpc_port, GRPC_LIST)))
    create_pb.write_bytes(asyncio.run(_one_grpc(main.grpc_port, GRPC_CREATE)))
    noop_http_port, noop_grpc_port = free_port(), free_port()
    noop_http = procs.start(
        "noop_aiohttp",
        [sys.executable, str(BENCH / "noop_aiohttp.py"), "--port", str(noop_http_port),
         "--list-body", str(list_body), "--create-body", str(create_body)],
    )  # fmt: skip
    noop_grpc = procs.start(
        "noop_grpc",
        [sys.executable, str(BENCH / "noop_grpc.py"), "--port", str(noop_grpc_port),
         "--list-response", str(list_pb), "--create-response", str(create_pb)],
    )  # fmt: skip
    wait_http(noop_http_port, LIST_PATH)
    asyncio.run(_wait_grpc(noop_grpc_port))
    gw_port = None
    gw_pid: list[int] = []
    if mode.peer:
        gw_port = free_port()
        gw = procs.start(
            "gw",
            [str(GW_BIN), "-http", f"127.0.0.1:{gw_port}", "-upstream",
             f"127.0.0.1:{main.grpc_port}"],
            env={**os.environ, "GOMAXPROCS": "1"},
        )  # fmt: skip
        gw_pid = [gw.pid]
        wait_http(gw_port, LIST_PATH)

    tg = {"taskgate": main.pids}
    peer_pids = {"gw": lambda: gw_pid, "taskgate": main.pids}
    http_noop = {"noop": lambda: [noop_http.pid]}
    grpc_noop = {"noop": lambda: [noop_grpc.pid]}
    for rep in range(1, mode.repeat + 1):
        # Targets run next to each other, in reverse order every other repetition (ABBA), so a
        # drift in the machine's other load weighs on both sides of a ratio alike.
        order: Callable[[list[Step]], list[Step]] = (lambda s: s) if rep % 2 else _reversed
        for kind in ("create", "list", "driver"):
            steps: list[Step] = [("taskgate", tg, main.http_port, main.http_port)]
            if gw_port is not None:
                steps.append(("peer", peer_pids, gw_port, main.http_port))
            if kind != "driver":
                steps.append(("noop", http_noop, noop_http_port, None))
                for name, server in variants.items():
                    steps.append(
                        (name, {"taskgate": server.pids}, server.http_port, main.http_port)
                    )
            for target, pids, port, reseed_port in order(steps):
                run = functools.partial(http_run, mode, port, kind)
                bench.measure(rep, f"REST {kind}", target, pids, run, reseed_port)
        for method in (GRPC_CREATE, GRPC_LIST):
            steps = [("taskgate", tg, main.grpc_port, main.http_port),
                     ("noop", grpc_noop, noop_grpc_port, None)]  # fmt: skip
            scenario = f"gRPC {method.rsplit('/', 1)[1]}"
            for target, pids, port, reseed_port in order(steps):
                run = functools.partial(grpc_run, mode, port, method)
                bench.measure(rep, scenario, target, pids, run, reseed_port)
    memory["after_runs"] = memory_kib(main.pids()[0])
    return bench, memory


#: One run: target name, its processes, its port, and the REST port to reseed through (or None).
Step = tuple[str, dict[str, Callable[[], list[int]]], int, int | None]


def _reversed(steps: list[Step]) -> list[Step]:
    return steps[::-1]


async def _wait_grpc(port: int, seconds: float = 30.0) -> None:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), seconds)


def soak(mode: Mode, server_url: str) -> str | None:
    """bench/soak.py for `mode.soak` seconds on a database of its own; its RSS line."""
    if not mode.soak:
        return None
    dsn = with_database(server_url, "taskgate_bench_soak")
    asyncio.run(_admin(server_url, 'DROP DATABASE IF EXISTS "taskgate_bench_soak" WITH (FORCE)'))
    asyncio.run(_admin(server_url, 'CREATE DATABASE "taskgate_bench_soak"'))
    window = max(2.0, mode.soak / 10)
    done = subprocess.run(
        [sys.executable, str(BENCH / "soak.py"), "--duration", f"{mode.soak:g}", "--window",
         f"{window:g}", "--database-url", dsn],
        capture_output=True, text=True, timeout=mode.soak + 180, check=False, cwd=BENCH.parent,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("- server RSS"):
            verdict = done.stdout.splitlines()[0]
            return f"{line[2:]} ({verdict.lstrip('# ')})"
    return f"soak.py failed: {done.stderr.strip()[-300:]}"


# --- the table -----------------------------------------------------------------------------


def _ratios(bench: Bench, scenario: str, target: str, base: str) -> list[float]:
    return [
        a / b if b else float("nan")
        for a, b in zip(bench.rps(scenario, target), bench.rps(scenario, base), strict=False)
    ]


def _fmt(values: list[float], digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values) if values else "n/a"


def _verdict(values: list[float], goal: float, higher: bool = True) -> str:
    if not values:
        return "not run"
    value = statistics.median(values)
    return "met" if (value >= goal if higher else value <= goal) else "not met"


def target_rows(bench: Bench, soak_line: str | None) -> list[list[str]]:
    rows: list[list[str]] = []
    for kind, label in (
        ("create", "REST CreateTask"), ("list", "REST ListTasks (page of 10)"),
        ("driver", "REST driver lookup"),
    ):  # fmt: skip
        scenario = f"REST {kind}"
        ratios = _ratios(bench, scenario, "taskgate", "peer")
        rows.append([f"{label} / Go peer, req/s", _fmt(bench.rps(scenario, "taskgate"), 0),
                     _fmt(bench.rps(scenario, "peer"), 0), _fmt(ratios), "≥ 2.0",
                     _verdict(ratios, 2.0)])  # fmt: skip
    ratios = _ratios(bench, "REST create", "taskgate", "noop")
    rows.append(["REST CreateTask / no-op aiohttp, req/s",
                 _fmt(bench.rps("REST create", "taskgate"), 0),
                 _fmt(bench.rps("REST create", "noop"), 0), _fmt(ratios), "≥ 0.25",
                 _verdict(ratios, 0.25)])  # fmt: skip
    for method in ("CreateTask", "ListTasks"):
        scenario = f"gRPC {method}"
        ratios = _ratios(bench, scenario, "taskgate", "noop")
        rows.append([f"gRPC {method} / no-op grpc.aio, calls/s",
                     _fmt(bench.rps(scenario, "taskgate"), 0), _fmt(bench.rps(scenario, "noop"), 0),
                     _fmt(ratios), "≥ 0.6", _verdict(ratios, 0.6)])  # fmt: skip
    for kind, label in (("create", "CreateTask"), ("list", "ListTasks"), ("driver", "lookup")):
        ours, theirs = bench.p99(f"REST {kind}", "taskgate"), bench.p99(f"REST {kind}", "peer")
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        rows.append([f"REST {label} p99 ms / peer's", _fmt(ours, 1), _fmt(theirs, 1),
                     _fmt(ratios), "≤ 1.0", _verdict(ratios, 1.0, higher=False)])  # fmt: skip
    ratios = _ratios(bench, "REST list", "workers 2", "taskgate")
    rows.append(["`--workers 2` / `--workers 1`, REST ListTasks req/s",
                 _fmt(bench.rps("REST list", "workers 2"), 0),
                 _fmt(bench.rps("REST list", "taskgate"), 0), _fmt(ratios), "≥ 1.7",
                 _verdict(ratios, 1.7)])  # fmt: skip
    rss = soak_line or "not run"
    verdict = "met" if "PASS" in rss else ("not run" if soak_line is None else "not met")
    rows.append(["RSS across the soak", rss, "", "", "< 10% growth", verdict])
    return rows


def feature_rows(bench: Bench) -> list[list[str]]:
    rows = []
    for name in sorted({r.target for r in bench.runs} - {"taskgate", "peer", "noop"}):
        for kind in ("list", "create"):
            ratios = _ratios(bench, f"REST {kind}", name, "taskgate")
            rows.append([name, f"REST {kind}", _fmt(bench.rps(f"REST {kind}", name), 0),
                         _fmt(bench.rps(f"REST {kind}", "taskgate"), 0), _fmt(ratios)])  # fmt: skip
    return rows


RUN_HEADERS = ("rep", "call", "target", "req/s", "p50 / p99 ms", "errors", "CPU µs/req", "busy")


def render(
    mode: Mode,
    info: dict[str, str],
    bench: Bench,
    memory: dict,
    soak_line: str | None,  # type: ignore[type-arg]
) -> str:
    client = "wrk -t1" if mode.client == "wrk" else "a Python aiohttp client (bench/_load.py)"
    lines = [
        BEGIN_MARK,
        f"## The speed table (`python -m bench{'' if mode.name == 'full' else ' --' + mode.name}`)",
        "",
        f"- Date: {info['date']}. Machine: `nproc` {info['nproc']}, CPU \"{info['cpu']}\", "
        f"Linux {info['kernel']}, Python {info['python']}; load average at the start "
        f"{info['loadavg']}.",
        f"- REST load: {client}, -c{mode.concurrency}, {mode.duration:g} s a run; gRPC: "
        f"{mode.grpc_processes} client process(es), {mode.concurrency} calls in flight in all. "
        f"{mode.repeat} repetition(s), each figure below one per repetition (rep 1 / rep 2); "
        "a verdict uses the median.",
        "- taskgate as shipped (`--workers 1`, metrics, access log at INFO to a file, limits, "
        "tracing API without an SDK); the peer is the Go grpc-gateway (GOMAXPROCS=1) in front "
        "of the same taskgate's gRPC port.",
        "",
        table(["target", "taskgate", "baseline", "ratio", "goal", "verdict"],
              target_rows(bench, soak_line)),
        "",
    ]  # fmt: skip
    features = feature_rows(bench)
    if features:
        lines += [
            "What a switch changes (REST, same run; ratio = variant / as shipped):",
            "",
            table(["variant", "call", "variant req/s", "as shipped req/s", "ratio"], features),
            "",
        ]
    run_rows = [
        [r.rep, r.scenario, r.target, f"{r.load.rps:.0f}",
         f"{r.load.p50_ms:.2f} / {r.load.p99_ms:.2f}", r.load.errors,
         ", ".join(f"{k} {v:.0f}" for k, v in r.cpu_us.items()), f"{r.cores_busy:.2f}"]
        for r in bench.runs
    ]  # fmt: skip
    lines += [
        "<details><summary>Every run</summary>",
        "",
        table(RUN_HEADERS, run_rows),
        "",
        f"taskgate memory (KiB): {memory}",
        "",
        "</details>",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len(END_MARK) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def serve_has_loop_flag() -> bool:
    taskgate = shutil.which("taskgate") or "taskgate"
    done = subprocess.run(
        [taskgate, "serve", "--help"], capture_output=True, text=True, check=False
    )
    return "--loop" in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="3 s runs, 1 repetition")
    speed.add_argument("--tiny", action="store_true", help="seconds; Python client, no peer")
    parser.add_argument("--database-url", help="a PostgreSQL server for the bench database")
    parser.add_argument("--results", default=str(RESULTS), help="RESULTS.md to update, '-': none")
    parser.add_argument("--other-loop", default="uvloop", help="--loop of the loop variant")
    args = parser.parse_args()
    mode = MODES["tiny" if args.tiny else "quick" if args.quick else "full"]
    if mode.client == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is needed (or use --tiny)")
    if mode.peer and not GW_BIN.exists():
        parser.error(f"the peer binary {GW_BIN} is missing (PEER_GW_BUILD), or use --tiny")
    loop_flag = None
    if mode.variants and serve_has_loop_flag():
        loop_flag = args.other_loop
    info = machine()
    pg_started = False if args.database_url else ensure_postgres()
    server_url = args.database_url or PG_SERVER_URL
    try:
        dsn = fresh_database(server_url)
        with Procs() as procs:
            bench, memory = run_all(mode, dsn, loop_flag, procs)
        soak_line = soak(mode, server_url)
    finally:
        stop_postgres_if(pg_started)
    section = render(mode, info, bench, memory, soak_line)
    print(section)
    if args.results != "-":
        write_section(Path(args.results), section)
        log(f"wrote the bench section of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
