"""`taskgate serve --workers N`: N serving processes on the same two ports, one database.

The parent starts the embedded PostgreSQL (when there is no --database-url) and applies the
migrations once, then spawns the workers. Each worker is a whole `taskgate serve` (both doors,
its own pool); the kernel spreads connections over them (SO_REUSEPORT, which grpc sets by
default and aiohttp sets on request). Nothing is kept in process memory that another worker
would need (page-token keys live in the database), so any worker can serve any request.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from taskgate.command import SignalHandlers, configure_logging, run_on_loop
from taskgate.metrics import MULTIPROC_ENV
from taskgate.server.database import database_origin, database_url, migrated_pool
from taskgate.server.settings import ServeSettings
from taskgate.store.errors import StoreError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
#: After the grace period, how long a worker may take to exit before it is killed.
STOP_MARGIN_SECONDS = 5.0


async def run_workers(settings: ServeSettings) -> int:
    """Run `settings.workers` worker processes until SIGTERM/SIGINT; the exit code."""
    if settings.grpc_address.port == 0 or settings.http_address.port == 0:
        log.error("cannot start: --workers needs fixed ports (port 0 would differ per worker)")
        return 1
    async with AsyncExitStack() as stack:
        signals = stack.enter_context(SignalHandlers())
        try:
            dsn = await stack.enter_async_context(database_url(settings))
            async with migrated_pool(dsn, database_origin(settings)):
                pass  # the workers use the migrated database, each with its own pool
        except StoreError as error:
            log.error("cannot start: %s", error)
            return 1
        worker_settings = replace(settings, database_url=dsn, workers=1)
        stack.enter_context(shared_metrics_dir())
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(
                target=_worker_main, args=(worker_settings, i), name=f"taskgate-worker-{i}"
            )
            for i in range(settings.workers)
        ]
        reloads = settings.tls is not None or settings.authz_policy is not None
        if reloads:
            # The workers inherit the blocked SIGHUP and unblock it once they handle it
            # (SignalHandlers.on): one sent while a worker starts waits, never ends it.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        for worker in workers:
            worker.start()
        log.info("started %d workers: pids %s", len(workers), [w.pid for w in workers])
        if reloads:  # each worker reloads its own certificates and policy
            signals.on(signal.SIGHUP, lambda: _forward(workers, signal.SIGHUP))
        failed = await _supervise(workers, signals.stop)
        # Each worker drains itself within the grace period; the margin only covers its pool
        # closing and process exit. One deadline for all of them, not one each.
        await asyncio.to_thread(_stop_all, workers, settings.grace_period + STOP_MARGIN_SECONDS)
    log.info("stopped")
    return 1 if failed else 0


async def _supervise(workers: Sequence[BaseProcess], stop: asyncio.Event) -> bool:
    """Wait for a stop signal, or for a worker to die (then stop the others); True if one died."""
    while not stop.is_set():
        dead = [w for w in workers if not w.is_alive()]
        if dead:
            log.error("worker %s exited with %s; stopping", dead[0].name, dead[0].exitcode)
            return True
        try:
            async with asyncio.timeout(POLL_SECONDS):
                await stop.wait()
        except TimeoutError:
            continue
    return False


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A private directory for the workers' metrics (taskgate/metrics.py), named in
    PROMETHEUS_MULTIPROC_DIR for the workers to inherit; removed, and the variable restored,
    once they have stopped."""
    path = Path(tempfile.mkdtemp(prefix="taskgate-metrics-"))
    before = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = before
        shutil.rmtree(path, ignore_errors=True)


def _forward(workers: Sequence[BaseProcess], signum: signal.Signals) -> None:
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signum)


def _stop_all(workers: Sequence[BaseProcess], timeout: float) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.terminate()  # SIGTERM: the worker drains within the grace period
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            log.warning("worker %s did not stop in %.0fs; killing it", worker.name, timeout)
            worker.kill()
            worker.join()


def _worker_main(settings: ServeSettings, index: int) -> None:
    from taskgate.server.lifecycle import run_serve

    configure_logging(settings.log_level, prefix=f"worker-{index} ", log_format=settings.log_format)
    from taskgate.tracing import configure_from_environment

    configure_from_environment()  # P13: each worker exports its own spans
    raise SystemExit(run_on_loop(run_serve(settings, reuse_port=True), settings.loop))
