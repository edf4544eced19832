"""Shared helpers for the hand-run benchmarks in bench/ (never imported by tests or CI).

Processes are started with Popen and stopped by their own PID (SIGTERM, then SIGKILL) in
`Procs.stop_all`; nothing is ever killed by name. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RAW = BENCH / "results" / "raw"
GW_BIN = Path(os.environ.get("PEER_GW_BUILD", str(Path.home() / ".cache" / "peer-gw"))) / "gw"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_PASSWORD = "postgres"  # noqa: S105 - the local PG15 cluster's documented bench password
BENCH_DB = os.environ.get("BENCH_DB", "taskgate_bench")
DB_URL = f"postgresql://postgres:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"
TASKS_PATH = "/apis/v1alpha1/tasks"
HZ = os.sysconf("SC_CLK_TCK")

#: The CreateTask body (KFP style) of the peer's bench/post.lua, the script wrk runs in rest.py.
POST_BODY = (
    '{"namespace":"ns1","pipelineName":"namespace/ns1/pipeline/bench","runId":"run-bench",'
    '"mlmdExecutionID":"7","fingerprint":"fp-bench","created_at":"2024-01-02T03:04:05Z"}'
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Procs:
    """Processes this run started; stopped by PID, newest first."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        RAW.mkdir(parents=True, exist_ok=True)
        # This run's output only: at INFO a server writes an access line per request, and
        # appending across runs grew these files by hundreds of MB.
        with (RAW / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        self.started.append(proc)
        log(f"started {name} pid {proc.pid}")
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)

    def __enter__(self) -> Procs:
        # SIGTERM/SIGINT to the harness still stops its children (via SystemExit + __exit__).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(130))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_http(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = http_request("GET", port, path)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout}s")


def http_request(method: str, port: int, path: str, body: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- /proc accounting --------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """proc(5)'s /proc/PID/stat from field 3 on (after "(comm)"); None once `pid` is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _user_system_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of every thread of `pid`, in clock ticks ((0, 0) once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0, 0
    return int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)


def cpu_ticks(pid: int) -> int:
    """utime+stime of every thread of `pid`, in clock ticks (0 once the process is gone)."""
    return sum(_user_system_ticks(pid))


def system_ticks(pid: int) -> int:
    """stime alone (the kernel's share of `cpu_ticks`), in clock ticks."""
    return _user_system_ticks(pid)[1]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of `pid`, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def machine_busy_ticks() -> int:
    """Non-idle CPU ticks of the whole machine (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


class CpuMeter:
    """CPU seconds used by named groups of PIDs between `__init__` and `stop()`, plus
    "machine": the non-idle CPU seconds of all cores (so other load on the box shows up).

    A group may be a callable returning the PIDs now (PostgreSQL backends: asyncpg's pool
    replaces a connection after max_queries). A PID that appears during the run counts
    from zero; one that exits during the run counts up to its last sample at stop (lost
    ticks after the start sample are not seen, so such a group is slightly under-counted).
    """

    def __init__(self, pids: dict[str, Iterable[int] | Callable[[], Iterable[int]]]) -> None:
        self.groups = pids
        self.start = {name: self._sample(name) for name in pids}
        self.busy0 = machine_busy_ticks()
        self.t0 = time.monotonic()

    def _sample(self, name: str) -> dict[int, int]:
        group = self.groups[name]
        members = group() if callable(group) else group
        return {pid: cpu_ticks(pid) for pid in members}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name in self.groups:
            before, after = self.start[name], self._sample(name)
            ticks = sum(max(after.get(pid, 0) - before.get(pid, 0), 0) for pid in after)
            used[name] = ticks / HZ
        used["machine"] = (machine_busy_ticks() - self.busy0) / HZ
        used["wall"] = time.monotonic() - self.t0
        return used


# --- PostgreSQL --------------------------------------------------------------------------


def psql(sql: str, database: str = BENCH_DB) -> str:
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    out = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", database,
         "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def ensure_postgres() -> bool:
    """Start the machine's PG15 cluster if it is down; True when this call started it."""
    status = subprocess.run(
        ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    started = False
    if not re.search(r"^15\s+main\s+5432\s+online", status, re.MULTILINE):
        log("starting PostgreSQL 15 (pg_ctlcluster 15 main start)")
        subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=True, timeout=60)
        started = True
        subprocess.run(
            ["su", "postgres", "-c", f"psql -qc \"ALTER USER postgres PASSWORD '{PG_PASSWORD}'\""],
            check=True, timeout=30,
        )  # fmt: skip
    return started


def stop_postgres_if(started: bool) -> None:
    if started:
        log("stopping PostgreSQL 15 (this run started it)")
        subprocess.run(["pg_ctlcluster", "15", "main", "stop"], check=True, timeout=60)


def fresh_database() -> None:
    """Drop and recreate the bench database (taskgate applies its migrations at start)."""
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', database="postgres")
    psql(f'CREATE DATABASE "{BENCH_DB}"', database="postgres")


def backend_pids() -> list[int]:
    """PostgreSQL backends connected to the bench database (taskgate's pool)."""
    out = psql(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [int(line) for line in out.split()]


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` onto `cpus` (threads started later inherit their creator's)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # a thread just ended
            os.sched_setaffinity(int(tid), cpus)


def postgres_pids() -> list[int]:
    """The bench server's processes: every one `pg_stat_activity` lists (backends and workers,
    all databases) and their parent, the postmaster, which new backends inherit from."""
    pids = [int(line) for line in psql("SELECT pid FROM pg_stat_activity").split()]
    fields = _stat_fields(pids[0]) if pids else None
    if fields is not None:
        pids.append(int(fields[1]))  # field 4 of proc(5): the parent
    return pids


def reseed(rest_port: int, count: int = 20) -> None:
    """Empty the tasks table and create `count` tasks through taskgate's REST door."""
    psql("TRUNCATE tasks")
    for i in range(1, count + 1):
        body = json.dumps(
            {
                "namespace": "ns1",
                "pipelineName": f"p{i}",
                "runId": f"r{i}",
                "mlmdExecutionID": str(i),
                "fingerprint": f"f{i}",
                "created_at": f"2023-06-01T00:00:{i:02d}Z",
            }
        )
        status, reply = http_request("POST", rest_port, TASKS_PATH, body)
        if status != 200:
            raise RuntimeError(f"seeding failed: {status} {reply[:300]!r}")


# --- taskgate ----------------------------------------------------------------------------


def start_taskgate(
    procs: Procs, grpc_port: int, http_port: int, log_level: str = "WARNING"
) -> subprocess.Popen[bytes]:
    """`taskgate serve` on the bench database (its lines go to results/raw/taskgate.log)."""
    taskgate = shutil.which("taskgate") or "taskgate"
    proc = procs.start(
        "taskgate",
        [taskgate, "serve", "--grpc-address", f"127.0.0.1:{grpc_port}",
         "--http-address", f"127.0.0.1:{http_port}", "--database-url", DB_URL,
         "--log-level", log_level],
    )  # fmt: skip
    wait_http(http_port, TASKS_PATH + "?page_size=1")
    return proc


# --- wrk ---------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    text: str


def wrk(url: str, connections: int, duration: str, lua: Path | None = None) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency"]
    if lua is not None:
        argv += ["-s", str(lua)]
    text = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?timeout (\d+)"):
        match = re.search(pattern, text)
        if match:
            errors += int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", text)
    if match:
        errors += sum(int(g) for g in match.groups())
    return WrkResult(requests, rps, p50, p99, errors, text)


# --- reporting ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
    }


def save_json(name: str, data: object) -> Path:
    RAW.mkdir(parents=True, exist_ok=True)
    path = RAW / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
