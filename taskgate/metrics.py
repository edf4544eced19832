"""Prometheus metrics of both commands, served at `GET /metrics` (docs/decisions.md P10).

Where calls are counted, so that every door counts alike (one function, `observe_call`, the same
labels and the same code): `taskgate serve`'s gRPC door in server/grpc_server.py, and the REST
door in gateway/app.py, which is `taskgate serve`'s REST door and all of `taskgate gateway`. A
REST request counts with the gRPC code its answer carries (a 404 is NOT_FOUND, with empty
service and method when no route matched). Health, reflection, `/healthz` and `/metrics` are
not counted.

`--workers N` (server/workers.py) gives every worker the same private directory in
PROMETHEUS_MULTIPROC_DIR before it starts: prometheus_client then keeps each value in a file of
that directory, and a scrape on any worker adds up every worker's files. The variable must be
set before prometheus_client is first imported in a process; one process alone keeps values in
memory.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from types import TracebackType

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
GRPC = "grpc"
REST = "rest"
#: gRPC-Web and Connect calls on the HTTP port (gateway/rpc_web_door.py), REST's neighbours.
GRPC_WEB = "grpc-web"
CONNECT = "connect"

#: Seconds; from 0.5 ms (a cached answer) to 10 s (past every deadline taskgate sets).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_CALL_LABELS = ("service", "method", "door")

CALLS = Counter(
    "taskgate_calls",
    "Calls answered, by service, method, door (grpc, rest, grpc-web or connect) and gRPC "
    "status code.",
    (*_CALL_LABELS, "code"),
)
LATENCY = Histogram(
    "taskgate_call_duration_seconds",
    "Time from a call's arrival at its door to its answer.",
    _CALL_LABELS,
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "taskgate_calls_in_flight",
    "Calls being served now, by door.",
    ("door",),
    multiprocess_mode="livesum",
)
READY = Gauge(
    "taskgate_ready",
    "1 while ready (gRPC health SERVING, /healthz 200), else 0; with --workers, the lowest.",
    multiprocess_mode="livemin",
)
BUILD_INFO = Gauge(
    "taskgate_build_info",
    "Always 1; the labels say which taskgate and Python run.",
    ("version", "python"),
    multiprocess_mode="livemax",
)
POOL_SIZE = Gauge(
    "taskgate_db_pool_connections",
    "Open connections in the database pool (taskgate serve).",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "taskgate_db_pool_connections_in_use",
    "Pooled connections lent to a call now (taskgate serve).",
    multiprocess_mode="livesum",
)
POOL_WAIT = Histogram(
    "taskgate_db_pool_acquire_seconds",
    "Time a call waited for a pooled connection (taskgate serve).",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3),
)
DB_ERRORS = Counter(
    "taskgate_db_errors",
    "Database operations that failed (unreachable, timed out, refused), by kind.",
    ("kind",),
)

UPSTREAM_CALLS = Counter(
    "taskgate_gateway_upstream_calls",
    "Unary calls taskgate gateway made to its upstream, by client: event-loop (one HTTP/2 "
    "connection run by the event loop) or grpcio (grpc.aio: the event-loop client is off, not "
    "connected, or could not carry the call).",
    ("client",),
)


def _version() -> str:
    try:
        return metadata.version("taskgate")
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.labels(_version(), platform.python_version()).set(1)

#: Label children by (full method, door[, code]): labels() costs more than a dict lookup.
_counters: dict[tuple[str, str, str], Counter] = {}
_histograms: dict[tuple[str, str], Histogram] = {}
_in_flight: dict[str, _InFlight] = {}


def split_method(full_method: str) -> tuple[str, str]:
    """("api.TaskService", "ListTasks") from "/api.TaskService/ListTasks"; ("", "") for ""."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


def observe_call(full_method: str, door: str, code: str, seconds: float) -> None:
    """Count one answered call: `code` is the gRPC status code's name ("OK", "NOT_FOUND")."""
    counter = _counters.get((full_method, door, code))
    if counter is None:
        counter = CALLS.labels(*split_method(full_method), door, code)
        _counters[full_method, door, code] = counter
    counter.inc()
    histogram = _histograms.get((full_method, door))
    if histogram is None:
        histogram = LATENCY.labels(*split_method(full_method), door)
        _histograms[full_method, door] = histogram
    histogram.observe(seconds)


class _InFlight:
    """One door's gauge as a context manager: a plain class, not @contextmanager, whose
    generator costs more than the two gauge updates on every call."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    def __enter__(self) -> None:
        self._gauge.inc()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._gauge.dec()


def in_flight(door: str) -> _InFlight:
    """Counts a call in `taskgate_calls_in_flight` while the `with` block runs (re-entrant:
    one object per door, holding no state of a call)."""
    counting = _in_flight.get(door)
    if counting is None:
        counting = _in_flight[door] = _InFlight(IN_FLIGHT.labels(door))
    return counting


@contextmanager
def pool_acquire() -> Iterator[None]:
    """Times the wait for a pooled connection: enter before acquiring, leave once acquired."""
    started = time.perf_counter()
    yield
    POOL_WAIT.observe(time.perf_counter() - started)


def render() -> bytes:
    """The Prometheus text of this process, or of every worker with --workers."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
