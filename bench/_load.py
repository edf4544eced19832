"""Load clients for `python -m bench` that need nothing but Python (no wrk, no h2load).

- `http_load`: an aiohttp client keeping `concurrency` requests in flight, for the tiny mode (the
  test suite runs it; wrk is a system tool the suite does not assume).
- `grpc_load`: a grpc.aio client split over `processes` processes, each with its own channel
  (one HTTP/2 connection) and its share of the concurrency, so one Python process is not what
  caps the no-op grpc.aio ceiling. Requests are pre-serialized and replies are not parsed.

Each returns a `Load`: calls, calls/s, p50/p99 in ms and errors. Nothing here imports
bench/_harness.py, so a spawned child process can import this module by its package name.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass

import aiohttp
import grpc


@dataclass(frozen=True)
class Load:
    calls: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _summary(latencies: list[float], seconds: float, errors: int) -> Load:
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(n - 1, int(q * n))] * 1e3 if n else float("nan")

    return Load(n, n / seconds if seconds > 0 else 0.0, pct(0.50), pct(0.99), errors)


async def _http(
    url: str, method: str, body: bytes | None, concurrency: int, duration: float, warmup: float
) -> Load:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        measuring = False
        stop_at = time.perf_counter() + warmup + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                start = time.perf_counter()
                if start >= stop_at:
                    return
                try:
                    async with session.request(method, url, data=body, headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 200
                except aiohttp.ClientError:
                    ok = False
                if not ok:
                    errors += measuring
                elif measuring:
                    latencies.append(time.perf_counter() - start)

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return _summary(latencies, elapsed, errors)


def http_load(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    concurrency: int = 32,
    duration: float = 1.0,
    warmup: float = 0.0,
) -> Load:
    """`concurrency` connections looping on one request for `duration` seconds."""
    return asyncio.run(_http(url, method, body, concurrency, duration, warmup))


async def _grpc(
    target: str, method: str, payload: bytes, concurrency: int, start_at: float, duration: float
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out
        await call(payload, timeout=10)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                start = time.perf_counter()
                if start >= stop_at:
                    return
                try:
                    await call(payload, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, errors, elapsed


def _grpc_child(
    target: str, method: str, payload: bytes, concurrency: int, start_at: float, duration: float
) -> tuple[list[float], int, float]:
    return asyncio.run(_grpc(target, method, payload, concurrency, start_at, duration))


def grpc_load(
    target: str,
    method: str,
    payload: bytes,
    concurrency: int = 32,
    duration: float = 1.0,
    processes: int = 2,
) -> Load:
    """`concurrency` calls in flight, spread over `processes` client processes that start
    together (a shared wall-clock start) and run for `duration` seconds."""
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    # A shared start, late enough for every child process to start and connect.
    start_at = time.time() + (1.5 if processes > 1 else 0.0)
    args = [(target, method, payload, n, start_at, duration) for n in shares if n]
    if len(args) == 1:
        results = [_grpc_child(*args[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(len(args)) as pool:
            results = pool.starmap(_grpc_child, args)
    latencies = [x for result in results for x in result[0]]
    errors = sum(result[1] for result in results)
    seconds = max(result[2] for result in results)
    return _summary(latencies, seconds, errors)
