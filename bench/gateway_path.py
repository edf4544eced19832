"""The gateway path: `taskgate gateway --upstream` vs the grpc-gateway peer, same upstream.

Issue 10 §3 asks that `taskgate gateway` in front of a gRPC server be no slower than Go's
grpc-gateway in front of the same server. This starts (all on 127.0.0.1, stopped by PID):

  taskgate serve    gRPC :19787, REST :19788 (the upstream; REST only seeds the table)
  taskgate gateway  REST :19789 --upstream 127.0.0.1:19787 --preset kfp
  gw                the Go grpc-gateway peer, REST :19790 -> 127.0.0.1:19787

and runs, per repetition, GET /apis/v1alpha1/tasks?page_size=10 (20 seeded tasks, reseeded
before every run) and POST (the peer's post.lua body) at wrk -t1 -c32, then -c1, the two
gateways one after the other within each step (interleaved, so drift hits both alike). CPU
µs/req per process comes from /proc/PID/stat: the gateway alone, and the upstream (serve) plus
its PostgreSQL backends, which both paths share. Both taskgate processes run as shipped, at
`--log-level INFO`: an access line per request, written to results/raw/<name>.log (the peer
writes none); `--log-level WARNING` measures them without.

    flock /tmp/taskgate-bench.lock python bench/gateway_path.py [--quick] [--repeat 2]
        [--duration 10s] [--latency-duration 5s] [--log-level INFO] [--profile]
        [--write-results] [--variant NAME:FLAGS [--variant-python NAME=PYTHON]
        [--variant-source NAME=DIR]] [--pin-serve]

`run(quick)` is the entry point `python -m bench` calls; it returns one dict per wrk run.
--write-results rewrites this script's section of RESULTS.md (between its own markers).
--profile adds one GET -c32 run on the gateway under py-spy and prints the top functions.
--pin-serve gives serve CPU 0 to itself and puts everything else on CPU 1 (what a deployment
with the gateway in a pod of its own looks like); the issue's method, and RESULTS.md's table,
leave every process free to run on either CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
#: A database of its own: helper scripts elsewhere drop and recreate theirs.
os.environ.setdefault("BENCH_DB", "taskgate_bench_gateway")

from _harness import (
    BENCH,
    GW_BIN,
    HZ,
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
    pin,
    postgres_pids,
    reseed,
    save_json,
    start_taskgate,
    stop_postgres_if,
    system_ticks,
    table,
    wait_http,
    wrk,
)

GRPC_PORT, SERVE_HTTP_PORT, GATEWAY_PORT, PEER_PORT = 19787, 19788, 19789, 19790
LIST_QUERY = TASKS_PATH + "?page_size=10"
RESULTS = BENCH / "RESULTS.md"
BEGIN, END = "<!-- bench.gateway_path: begin -->", "<!-- bench.gateway_path: end -->"


def run(quick: bool) -> list[dict[str, object]]:
    """One interleaved run (quick: 1 repetition of 5 s / 3 s); one dict per wrk run."""
    args = argparse.Namespace(
        repeat=1 if quick else 2,
        duration="5s" if quick else "10s",
        latency_duration="3s" if quick else "5s",
        connections=32,
        gomaxprocs="1",
        profile=False,
        native=False,
        log_level="INFO",
        extra_args=[],
        variant=[] if quick else ["uvloop:--loop uvloop"],
        variant_python=[],
        variant_source=[],
        pin_serve=False,
    )
    pg_started = ensure_postgres()
    fresh_database()
    try:
        with Procs() as procs:
            return measure(procs, args)["runs"]  # type: ignore[return-value]
    finally:
        stop_postgres_if(pg_started)


def main() -> None:
    parser = argparse.ArgumentParser(description="taskgate gateway vs grpc-gateway, same upstream")
    parser.add_argument("--quick", action="store_true", help="1 repetition, 5 s / 3 s")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--latency-duration", default="5s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--gomaxprocs", default="1", help="GOMAXPROCS for gw ('' = Go default)")
    parser.add_argument(
        "--pin-serve",
        action="store_true",
        help="serve alone on CPU 0; the gateways, wrk and PostgreSQL on CPU 1 (not the issue's"
        " method: the upstream with a core of its own, as in a pod of its own)",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="of serve and the gateways (INFO: as shipped)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy one GET run on gateway")
    parser.add_argument("--native", action="store_true", help="--profile with native frames")
    parser.add_argument("--write-results", action="store_true", help="update RESULTS.md")
    parser.add_argument("--label", default="", help="a note for the report (what was changed)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:FLAGS",
        help="one more gateway with these flags, measured beside (e.g. 'uvloop:--loop uvloop')",
    )
    parser.add_argument(
        "--variant-python",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="run variant NAME with this interpreter (a venv with taskgate's dependencies)",
    )
    parser.add_argument(
        "--variant-source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="run variant NAME from this copy of the source (PYTHONPATH=DIR), for a code A/B",
    )
    parser.add_argument(
        "extra_args", nargs="*", help="more `taskgate gateway` flags (after --)", default=[]
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.duration, args.latency_duration = 1, "5s", "3s"
    if args.pin_serve and args.write_results:
        parser.error("--write-results records the unpinned method only (leave out --pin-serve)")
    if args.pin_serve and (os.cpu_count() or 1) < 2:
        parser.error("--pin-serve needs two CPUs")

    info = machine()
    pg_started = ensure_postgres()
    fresh_database()
    try:
        with Procs() as procs:
            report = measure(procs, args)
    finally:
        if args.pin_serve:
            _unpin_postgres()
        stop_postgres_if(pg_started)
    report["pin_serve"] = args.pin_serve
    report["machine"] = info
    report["label"] = args.label
    path = save_json("gateway_path", report)
    text = render(report)
    print(text)
    log(f"raw figures: {path}")
    if args.write_results:
        write_results(text, args.log_level)


def measure(procs: Procs, args: argparse.Namespace) -> dict[str, object]:
    serve = start_taskgate(procs, GRPC_PORT, SERVE_HTTP_PORT, args.log_level)
    reseed(SERVE_HTTP_PORT)
    taskgate = shutil.which("taskgate") or "taskgate"
    gateway = procs.start(
        "gateway",
        [taskgate, "gateway", "--upstream", f"127.0.0.1:{GRPC_PORT}", "--preset", "kfp",
         "--http-address", f"127.0.0.1:{GATEWAY_PORT}", "--log-level", args.log_level,
         *args.extra_args],
    )  # fmt: skip
    env = dict(os.environ)
    if args.gomaxprocs:
        env["GOMAXPROCS"] = args.gomaxprocs
    peer = procs.start(
        "gw",
        [str(GW_BIN), "-http", f"127.0.0.1:{PEER_PORT}", "-upstream", f"127.0.0.1:{GRPC_PORT}"],
        env=env,
    )
    targets = {
        "gateway": (GATEWAY_PORT, gateway.pid),
        "peer": (PEER_PORT, peer.pid),
    }
    pythons, sources = _named(args.variant_python), _named(args.variant_source)
    for index, spec in enumerate(args.variant, start=1):
        name, _, flags = spec.partition(":")
        port = PEER_PORT + index
        variant_env = dict(os.environ)
        if name in sources:  # another copy of the source: `git archive REV | tar -x -C DIR`
            variant_env["PYTHONPATH"] = sources[name]
        command = [pythons[name], "-m", "taskgate"] if name in pythons else [taskgate]
        variant = procs.start(
            f"gateway-{name}",
            [*command, "gateway", "--upstream", f"127.0.0.1:{GRPC_PORT}", "--preset", "kfp",
             "--http-address", f"127.0.0.1:{port}", "--log-level", args.log_level,
             *args.extra_args, *flags.split()],
            env=variant_env,
        )  # fmt: skip
        targets[f"gateway {name}"] = (port, variant.pid)
    for port, _ in targets.values():
        wait_http(port, LIST_QUERY)
    if args.pin_serve:
        _pin_serve(serve.pid, [pid for _, pid in targets.values()])
    _check_same_answers()
    for name, (port, _) in targets.items():
        log(f"warm-up {name}")
        wrk(f"http://127.0.0.1:{port}{LIST_QUERY}", args.connections, "2s")

    runs: list[dict[str, object]] = []
    lua = BENCH / "post.lua"
    for rep in range(1, args.repeat + 1):
        for op in ("GET", "POST"):
            for conns, duration in ((args.connections, args.duration), (1, args.latency_duration)):
                order = list(targets.items())
                if rep % 2 == 0:  # alternate who goes first
                    order.reverse()
                for name, (port, pid) in order:
                    reseed(SERVE_HTTP_PORT)
                    meter = CpuMeter(
                        {"proxy": [pid], "serve": [serve.pid], "postgres": backend_pids}  # type: ignore[dict-item]
                    )
                    kernel = system_ticks(pid)
                    path = LIST_QUERY if op == "GET" else TASKS_PATH
                    result = wrk(
                        f"http://127.0.0.1:{port}{path}",
                        conns,
                        duration,
                        lua if op == "POST" else None,
                    )
                    used = meter.stop()
                    kernel = system_ticks(pid) - kernel
                    n = max(result.requests, 1)
                    row: dict[str, object] = {
                        "rep": rep, "op": op, "conns": conns, "target": name,
                        "requests": result.requests, "rps": result.rps,
                        "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors,
                        "proxy_us": used["proxy"] / n * 1e6,
                        "proxy_sys_us": kernel / HZ / n * 1e6,
                        "serve_us": used["serve"] / n * 1e6,
                        "postgres_us": used["postgres"] / n * 1e6,
                        "cores_busy": used["machine"] / used["wall"],
                    }  # fmt: skip
                    runs.append(row)
                    log(
                        f"rep {rep} {op} c{conns} {name}: {result.rps:.0f} req/s "
                        f"p50 {result.p50_ms:.2f} p99 {result.p99_ms:.2f} ms, errors "
                        f"{result.errors}, proxy {row['proxy_us']:.0f} µs/req"
                    )
    report: dict[str, object] = {
        "runs": runs,
        "extra_args": args.extra_args,
        "variants": args.variant,
        "log_level": args.log_level,
    }
    if args.profile:
        reseed(SERVE_HTTP_PORT)
        report["profile_file"] = str(
            profile(gateway.pid, args.connections, args.duration, native=args.native)
        )
    return report


def _pin_serve(serve: int, proxies: list[int]) -> None:
    """`--pin-serve`: serve on CPU 0 alone; this script (so wrk), the proxies and PostgreSQL on
    CPU 1. main() puts PostgreSQL back on every CPU afterwards."""
    others = {1}
    os.sched_setaffinity(0, others)
    for pid in [*proxies, *postgres_pids()]:
        pin(pid, others)
    pin(serve, {0})
    log("pinned: serve on CPU 0; the proxies, wrk and PostgreSQL on CPU 1")


def _unpin_postgres() -> None:
    every = set(range(os.cpu_count() or 1))
    for pid in postgres_pids():
        pin(pid, every)


def _named(specs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs (`--variant-python`, `--variant-source`) by name."""
    pairs = [spec.partition("=") for spec in specs]
    return {name: value for name, _, value in pairs}


def _check_same_answers() -> None:
    """Both gateways must give the same GET body (same upstream, same JSON options)."""
    _, ours = http_request("GET", GATEWAY_PORT, LIST_QUERY)
    _, theirs = http_request("GET", PEER_PORT, LIST_QUERY)
    if ours != theirs:
        log(f"note: GET bodies differ ({len(ours)} B vs the peer's {len(theirs)} B)")
    status, reply = http_request("POST", GATEWAY_PORT, TASKS_PATH, POST_BODY)
    if status != 200:
        raise RuntimeError(f"POST through the gateway failed: {status} {reply[:300]!r}")


def profile(pid: int, connections: int, duration: str, *, native: bool = False) -> Path:
    seconds = int(duration.rstrip("s"))
    raw = RAW / "pyspy-gateway.txt"
    log("profiling the gateway (py-spy) during a GET run")
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "-d", str(seconds), "--format", "raw", "-o", str(raw),
         # py-spy reads C frames only with the process stopped at each sample
         *(["--native", "-r", "100"] if native else ["--nonblocking", "-r", "200"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        wrk(f"http://127.0.0.1:{GATEWAY_PORT}{LIST_QUERY}", connections, duration)
        spy.wait(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=10)
    return raw


def ratios(runs: list[dict[str, object]]) -> dict[tuple[str, str, int], list[float]]:
    """(each gateway)/peer req/s per (target, op, conns), one ratio per repetition."""
    by_key = {(r["rep"], r["op"], r["conns"], r["target"]): r for r in runs}
    out: dict[tuple[str, str, int], list[float]] = {}
    for (rep, op, conns, target), row in by_key.items():
        if target == "peer":
            continue
        peer = by_key[(rep, op, conns, "peer")]
        out.setdefault((str(target), str(op), int(str(conns))), []).append(
            float(str(row["rps"])) / float(str(peer["rps"]))
        )
    return out


def render(report: dict[str, object]) -> str:
    runs = report["runs"]
    assert isinstance(runs, list)  # noqa: S101 - shape of our own dict
    rows = [
        [r["rep"], r["op"], f"-c{r['conns']}", r["target"], f"{r['rps']:.0f}",
         f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}", r["errors"],
         f"{r['proxy_us']:.0f} ({r.get('proxy_sys_us', 0):.0f})",
         f"{r['serve_us']:.0f}", f"{r['postgres_us']:.0f}", f"{r['cores_busy']:.2f}"]
        for r in runs
    ]  # fmt: skip
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
                "proxy CPU µs/req (kernel)",
                "serve µs/req",
                "postgres µs/req",
                "cores busy",
            ],
            rows,
        )
    ]
    ratio_rows = [
        [target, op, f"-c{conns}", " ".join(f"{v:.2f}" for v in values),
         f"{statistics.mean(values):.2f}", f"{statistics.median(values):.2f}"]
        for (target, op, conns), values in ratios(runs).items()
    ]  # fmt: skip
    headers = ["target", "op", "conns", "req/s / peer's, per rep", "mean", "median"]
    out += ["", table(headers, ratio_rows)]
    return "\n".join(out)


_AS_SHIPPED = " (as shipped: an access line per request, to a file)."


def write_results(text: str, log_level: str) -> None:
    """Replace this script's section of RESULTS.md (between its markers), or append it."""
    info = machine()
    section = "\n".join(
        [
            BEGIN,
            "## The gateway path: `taskgate gateway --preset kfp` vs grpc-gateway, same upstream"
            " (`python bench/gateway_path.py`)",
            "",
            f"- Date: {info['date']}. Machine: `nproc` {info['nproc']}, {info['cpu']}, Linux "
            f"{info['kernel']}, Python {info['python']}; load average before {info['loadavg']}.",
            "- Both gateways in front of the same `taskgate serve` gRPC port (gw: GOMAXPROCS=1);"
            " wrk -t1, GET of a 10-task page and POST CreateTask, the two targets interleaved;"
            " proxy CPU is the gateway process alone. serve and the gateways at"
            f" `--log-level {log_level}`{_AS_SHIPPED if log_level == 'INFO' else '.'}",
            "",
            text,
            END,
        ]
    )
    current = RESULTS.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(updated)
    log(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
