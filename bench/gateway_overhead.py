"""The gateway's HTTP side alone: `taskgate gateway --preset kfp` with a canned in-memory Invoker.

bench/gateway_path.py measures the gateway in front of a real upstream, where grpc.aio's client
is a large part of the gateway's CPU. This one leaves the upstream out, so what is measured is
everything else the gateway does per request: aiohttp, the middlewares and signals, request id,
span, metrics, routing, metadata, request mapping, rendering. It starts (all on 127.0.0.1,
ports 19900-19949, stopped by PID):

  gateway   :19900  the `gateway` command's own code path (flags parsed by gateway/cli.py,
                    `run_gateway`), routes from a descriptor set of api/task.proto, whose Invoker
                    answers ListTasks with a 10-task page and CreateTask with a Task from memory
  noop      :19901  bench/noop_aiohttp.py with the same JSON bodies (the framework's ceiling)
  <name>    :19902+ `--variant NAME:DIR`: the same gateway run from another copy of the source
                    (`git archive HEAD | tar -x -C DIR`), for an interleaved A/B

then runs wrk -t1 -c32 GET of a 10-task page and POST (bench/post.lua) against each target in
turn, `--reps` times, and prints req/s and the target process's CPU µs/req (/proc/PID/stat).
Each run takes /tmp/taskgate-bench.lock (flock) so it never overlaps another benchmark.

    python bench/gateway_overhead.py [--reps 3] [--duration 4s] [--variant base:/tmp/tg_base]
    python bench/gateway_overhead.py --profile out.txt   # py-spy raw samples of a GET run

py-spy pauses the gateway for each sample unless `--nonblocking` (whose stacks of this busy
process are often torn: half the samples then lack their outer frames).

`--child PORT` is the gateway process itself (used by the above; not run by hand).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if __package__ in (None, ""):
    # `python bench/gateway_overhead.py`: last, so a --variant's PYTHONPATH copy wins.
    sys.path.append(str(BENCH.parent))

from bench._harness import (  # noqa: E402
    POST_BODY,
    TASKS_PATH,
    CpuMeter,
    Procs,
    http_request,
    log,
    table,
    wait_http,
    wrk,
)

GATEWAY_PORT, NOOP_PORT, FIRST_VARIANT_PORT = 19900, 19901, 19902
#: Never dialled: the canned Invoker replaces the upstream (only /healthz would ask it).
UNUSED_UPSTREAM = "127.0.0.1:19949"
LIST_QUERY = f"{TASKS_PATH}?page_size=10"
LOCK = "/tmp/taskgate-bench.lock"  # noqa: S108 - shared with the lead's benchmarks
#: What a signed page token of `serve` looks like (length and alphabet).
PAGE_TOKEN = "eyJrIjoiMjAyMy0wNi0wMVQwMDowMDoxMFoiLCJpIjoiMDAwMDAwMDAtMDAwMC00MDAwLTgwMDAifQ" * 2


# --- the gateway process (--child) -------------------------------------------------------


def _descriptor_set(path: Path) -> None:
    """api/task.proto and everything it imports, as `protoc --include_imports` would write."""
    from google.protobuf import descriptor_pb2

    from taskgate.api import task_pb2

    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: Any) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        file.CopyToProto(fds.file.add())

    add(task_pb2.DESCRIPTOR)
    path.write_bytes(fds.SerializeToString())


class CannedInvoker:
    """ListTasks: a page of 10 tasks (as bench/_harness.py's seed makes them); CreateTask: the
    task sent, with an id and timestamps, as `serve` answers. No network, no database."""

    def __init__(self, pool: Any) -> None:
        from google.protobuf import message_factory

        def message_class(name: str) -> Any:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

        self._task = message_class("api.Task")
        self._list = message_class("api.ListTasksResponse")(
            tasks=[self._seeded(i) for i in range(1, 11)],
            next_page_token=PAGE_TOKEN,
            total_size=20,
        )

    def _seeded(self, i: int) -> Any:
        task = self._task(
            id=f"00000000-0000-4000-8000-{i:012d}",
            namespace="ns1",
            pipelineName=f"p{i}",
            runId=f"r{i}",
            mlmdExecutionID=str(i),
            fingerprint=f"f{i}",
        )
        task.created_at.FromJsonString(f"2023-06-01T00:00:{i:02d}Z")
        task.finished_at.FromJsonString(f"2023-06-01T00:01:{i:02d}.123456Z")
        return task

    async def unary(self, method: str, request: Any, options: Any) -> Any:
        from taskgate.gateway.invoker import UnaryResult

        if method.endswith("/ListTasks"):
            return UnaryResult(self._list)
        task = self._task()
        task.CopyFrom(request.task)
        task.id = "00000000-0000-4000-8000-000000000777"
        task.finished_at.seconds = 1704164646  # 2024-01-02T03:04:06Z
        return UnaryResult(task)

    def server_stream(self, method: str, request: Any, options: Any) -> AsyncIterator[Any]:
        raise NotImplementedError(method)


def child(port: int, extra: list[str]) -> int:
    """The `gateway` command as its CLI runs it, but with the canned Invoker."""
    from taskgate.gateway import cli as gateway_cli
    from taskgate.gateway import standalone

    descriptors = Path(tempfile.mkdtemp(prefix="gateway-overhead-")) / "task.binpb"
    _descriptor_set(descriptors)
    parser = argparse.ArgumentParser()
    gateway_cli.add_arguments(parser, {})
    argv = [
        *("--upstream", UNUSED_UPSTREAM, "--descriptor-set", str(descriptors), "--preset", "kfp"),
        *("--http-address", f"127.0.0.1:{port}", "--log-level", "WARNING"),
    ]
    if "--upstream-client" in parser._option_string_actions:
        argv += ["--upstream-client", "grpcio"]  # no upstream connection at all (P37's client)
    args = parser.parse_args([*argv, *extra])
    # (channel, config, pool, ...): whatever else the command's own invoker takes.
    canned = lambda *made_of: CannedInvoker(made_of[2])  # noqa: E731
    standalone._invoker = canned  # type: ignore[assignment]
    return gateway_cli.run(args)


# --- the measuring process ---------------------------------------------------------------


@contextmanager
def bench_lock() -> Iterator[None]:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _noop_bodies() -> tuple[Path, Path]:
    """The gateway's own answers, so the no-op server sends the same bytes."""
    status, listing = http_request("GET", GATEWAY_PORT, LIST_QUERY)
    status2, created = http_request("POST", GATEWAY_PORT, TASKS_PATH, POST_BODY)
    if status != 200 or status2 != 200:
        raise RuntimeError(f"the canned gateway answered {status} / {status2}")
    folder = Path(tempfile.mkdtemp(prefix="gateway-overhead-"))
    (folder / "list.json").write_bytes(listing)
    (folder / "create.json").write_bytes(created)
    return folder / "list.json", folder / "create.json"


def _start(procs: Procs, args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    me = str(Path(__file__).resolve())
    gateway = procs.start(
        "overhead-gateway", [sys.executable, me, "--child", str(GATEWAY_PORT), *args.flags]
    )
    wait_http(GATEWAY_PORT, LIST_QUERY)
    targets = {"gateway": (GATEWAY_PORT, gateway.pid)}
    for index, spec in enumerate(args.variant):
        name, _, source = spec.partition(":")
        port = FIRST_VARIANT_PORT + index
        env = {**os.environ, "PYTHONPATH": source}
        variant = procs.start(
            f"overhead-{name}",
            [sys.executable, me, "--child", str(port), *args.flags],
            env=env,
        )
        wait_http(port, LIST_QUERY)
        targets[name] = (port, variant.pid)
    list_body, create_body = _noop_bodies()
    if not args.no_noop:
        noop = procs.start(
            "overhead-noop",
            [sys.executable, str(BENCH / "noop_aiohttp.py"), "--port", str(NOOP_PORT),
             "--list-body", str(list_body), "--create-body", str(create_body)],
        )  # fmt: skip
        wait_http(NOOP_PORT, LIST_QUERY)
        targets["noop aiohttp"] = (NOOP_PORT, noop.pid)
    return targets


def _run(port: int, pid: int, op: str, args: argparse.Namespace) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{LIST_QUERY if op == 'GET' else TASKS_PATH}"
    lua = BENCH / "post.lua" if op == "POST" else None
    meter = CpuMeter({"target": [pid]})
    result = wrk(url, args.connections, args.duration, lua)
    used = meter.stop()
    return {
        "rps": result.rps,
        "cpu_us": used["target"] / max(result.requests, 1) * 1e6,
        "errors": result.errors,
        "machine_cores": used["machine"] / used["wall"],
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with Procs() as procs:
        targets = _start(procs, args)
        for name, (port, _) in targets.items():
            wrk(f"http://127.0.0.1:{port}{LIST_QUERY}", args.connections, "1s")  # warm-up
            wrk(f"http://127.0.0.1:{port}{TASKS_PATH}", args.connections, "1s", BENCH / "post.lua")
            log(f"warmed up {name}")
        if args.profile:
            _profile(targets["gateway"], args)
            return runs
        for rep in range(1, args.reps + 1):
            for op in args.ops:
                # Interleaved: each target once per rep and op, the order turned every rep.
                order = list(targets.items())
                if rep % 2 == 0:
                    order.reverse()
                for name, (port, pid) in order:
                    with bench_lock():
                        figures = _run(port, pid, op, args)
                    runs.append({"rep": rep, "op": op, "target": name, **figures})
                    log(
                        f"rep {rep} {op} {name}: {figures['rps']:.0f} req/s, "
                        f"{figures['cpu_us']:.0f} µs/req, {figures['errors']} errors, "
                        f"machine {figures['machine_cores']:.2f} cores"
                    )
    return runs


def _profile(target: tuple[int, int], args: argparse.Namespace) -> None:
    port, pid = target
    op = args.ops[0]
    url = f"http://127.0.0.1:{port}{LIST_QUERY if op == 'GET' else TASKS_PATH}"
    with bench_lock():
        spy = subprocess.Popen(
            ["py-spy", "record", "-r", "500", *(["--nonblocking"] if args.nonblocking else []),
             "-f", "raw", "-o", args.profile,
             "-d", str(int(args.duration.rstrip("s")) + 2), "-p", str(pid)],
        )  # fmt: skip
        time.sleep(1)
        wrk(url, args.connections, args.duration, BENCH / "post.lua" if op == "POST" else None)
        spy.wait(timeout=60)
    log(f"py-spy samples in {args.profile}")


def summary(runs: list[dict[str, Any]]) -> str:
    rows = []
    keys = sorted({(r["op"], r["target"]) for r in runs}, key=lambda k: (k[0], k[1]))
    for op, target in keys:
        mine = [r for r in runs if r["op"] == op and r["target"] == target]
        rps = [r["rps"] for r in mine]
        cpu = [r["cpu_us"] for r in mine]
        rows.append(
            [op, target, f"{statistics.median(rps):.0f}", f"{min(rps):.0f}–{max(rps):.0f}",
             f"{statistics.median(cpu):.0f}", f"{min(cpu):.0f}–{max(cpu):.0f}",
             sum(r["errors"] for r in mine)]
        )  # fmt: skip
    text = table(
        ["op", "target", "req/s median", "req/s range", "CPU µs/req median", "CPU range",
         "errors"],
        rows,
    )  # fmt: skip
    return text + "\n\n" + _paired(runs)


def _paired(runs: list[dict[str, Any]]) -> str:
    """gateway / each --variant, per rep (the two ran next to each other): the medians."""
    by = {(r["rep"], r["op"], r["target"]): r for r in runs}
    rows = []
    for op, target in sorted({(r["op"], r["target"]) for r in runs}):
        if target in ("gateway", "noop aiohttp"):
            continue
        pairs = [
            (by[rep, o, "gateway"], by[rep, o, t]) for rep, o, t in by if (o, t) == (op, target)
        ]
        cpu = sorted(g["cpu_us"] / v["cpu_us"] for g, v in pairs)
        rps = sorted(g["rps"] / v["rps"] for g, v in pairs)
        rows.append([op, f"gateway / {target}", _spread(cpu), _spread(rps)])
    return table(["op", "pair", "CPU µs/req ratio, per rep", "req/s ratio, per rep"], rows)


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", default="4s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ops", nargs="+", default=["GET", "POST"], choices=["GET", "POST"])
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME:DIR, another source tree measured"
    )
    parser.add_argument("--no-noop", action="store_true", help="leave out the no-op aiohttp")
    parser.add_argument("--profile", help="py-spy raw samples of one run on the gateway, to FILE")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="py-spy without pausing the gateway (its stacks are then often torn)",
    )
    parser.add_argument("--json", type=Path, help="also write the runs as JSON to FILE")
    parser.add_argument("flags", nargs="*", default=[], help="more `taskgate gateway` flags")
    args, extra = parser.parse_known_args()
    if args.child is not None:
        return child(args.child, [*args.flags, *extra])
    args.flags = [*args.flags, *extra]
    runs = measure(args)
    if runs:
        print(summary(runs))
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
