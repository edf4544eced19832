"""`taskgate serve`: the composition root. Start in order, stop in reverse.

database (embedded or external) → migrations → gRPC door (+ reflection, health) → REST door →
SERVING. On SIGTERM/SIGINT: NOT_SERVING, stop accepting, let in-flight calls finish (grace
period), close the pool, stop the embedded PostgreSQL if this process started it, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc

from taskgate.api import task_pb2
from taskgate.command import Address, SignalHandlers
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.server.database import database_url, migrated_pool
from taskgate.server.grpc_server import create_grpc_server
from taskgate.server.health import Health
from taskgate.server.local_invoker import LocalInvoker
from taskgate.server.pipeline import CallPipeline
from taskgate.server.reflection import enable_reflection
from taskgate.server.settings import ServeSettings
from taskgate.server.task_service import SERVICE_NAME, TaskService
from taskgate.store.errors import StoreError
from taskgate.store.task_store import TaskStore

log = logging.getLogger(__name__)


class StartupError(Exception):
    """taskgate cannot start; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started `taskgate serve`: the bound ports (useful when port 0 was asked for)."""

    grpc_port: int
    http_port: int


async def run_serve(settings: ServeSettings, *, reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    try:
        with SignalHandlers() as signals:
            async with serving(settings, reuse_port=reuse_port) as running:
                log.info(
                    "taskgate ready: gRPC on %s:%d, REST on %s:%d",
                    settings.grpc_address.host,
                    running.grpc_port,
                    settings.http_address.host,
                    running.http_port,
                )
                await signals.stop.wait()
                log.info("shutting down (grace period %.0fs)", settings.grace_period)
    except (StartupError, StoreError) as error:
        log.error("cannot start: %s", error)
        return 1
    log.info("stopped")
    return 0


@asynccontextmanager
async def serving(
    settings: ServeSettings, *, reuse_port: bool = False
) -> AsyncIterator[RunningServer]:
    """Everything `taskgate serve` runs, started; stopped gracefully on exit."""
    async with AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(database_url(settings))
        pool = await stack.enter_async_context(migrated_pool(dsn))
        store = TaskStore(pool)
        # Read (or create) the page-token key now, while the database is known to be up, so that
        # ListTasks validates before it ever needs the database (KFP's error order holds even
        # during an outage).
        await store.token_key()
        pipeline = CallPipeline(TaskService(store).methods())

        server = create_grpc_server(pipeline, reuse_port=reuse_port)
        health = Health(server, [SERVICE_NAME])
        await health.start()
        enable_reflection(server, [SERVICE_NAME])
        grpc_port = _bind_grpc(server, settings.grpc_address)
        await server.start()
        stack.push_async_callback(_stop_grpc, server, settings.grace_period)

        routes = RouteTable.from_services([task_pb2.DESCRIPTOR.services_by_name["TaskService"]])
        app = create_gateway_app(
            routes, LocalInvoker(pipeline), GatewayOptions.kfp(), health=health.is_serving
        )
        try:
            http_port = await start_http(
                stack,
                app,
                settings.http_address.host,
                settings.http_address.port,
                reuse_port=reuse_port,
                shutdown_timeout=settings.grace_period,
            )
        except OSError as error:
            raise StartupError(
                f"cannot listen for REST on {settings.http_address}: {error.strerror}"
            ) from None

        await health.set_serving()
        watch = asyncio.create_task(_watch_database(store, health, settings.health_interval))
        try:
            yield RunningServer(grpc_port, http_port)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await health.shut_down()


async def _watch_database(store: TaskStore, health: Health, interval: float) -> None:
    """Readiness follows the database: NOT_SERVING while it cannot be reached, so a load
    balancer or a kubelet takes this replica out until it can be again."""
    serving = True
    while True:
        await asyncio.sleep(interval)
        try:
            reachable = await store.ping()
        except Exception:  # a bug here must not end the watch
            log.exception("database health check failed")
            reachable = False
        if reachable != serving:
            serving = reachable
            if reachable:
                log.info("the database is reachable again: SERVING")
                await health.set_serving()
            else:
                log.warning("the database is unreachable: NOT_SERVING until it is back")
                await health.set_not_serving()


def _bind_grpc(server: grpc.aio.Server, address: Address) -> int:
    try:
        port = server.add_insecure_port(str(address))
    except RuntimeError:
        port = 0
    if port == 0 and address.port != 0:
        raise StartupError(f"cannot listen for gRPC on {address}: address in use or unavailable")
    return port


async def _stop_grpc(server: grpc.aio.Server, grace: float) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await server.stop(grace)
