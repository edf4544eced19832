"""`taskgate serve`: the composition root. Start in order, stop in reverse.

database (embedded or external) → migrations → gRPC door (+ reflection, health) → REST door →
SERVING. On SIGTERM/SIGINT (`Drain`): NOT_SERVING and `/healthz` 503 at once, keep accepting for
the shutdown lag (so load balancers notice), then stop both listeners together and let in-flight
calls on both doors finish within what is left of the one grace period; close the pool, stop the
embedded PostgreSQL if this process runs it, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import grpc

from taskgate.api import task_pb2
from taskgate.command import Address, SignalHandlers, shutdown_lag
from taskgate.gateway.app import create_gateway_app
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.server.authz import Gate, PolicyError, PolicyReloader, open_gate, rest_options
from taskgate.server.database import database_origin, database_url, migrated_pool
from taskgate.server.grpc_server import create_grpc_server
from taskgate.server.health import KFP_HEALTHZ_PATH, Health, kfp_healthz_body
from taskgate.server.local_invoker import LocalInvoker
from taskgate.server.pipeline import CallPipeline
from taskgate.server.reflection import enable_reflection
from taskgate.server.settings import ServeSettings
from taskgate.server.task_service import SERVICE_NAME, TaskService
from taskgate.store.errors import StoreError
from taskgate.store.task_store import TaskStore
from taskgate.tls import ServerTLS, TLSError

log = logging.getLogger(__name__)


class StartupError(Exception):
    """taskgate cannot start; the message says why and what to do."""


class Drain:
    """One shutdown: `begin` (SIGTERM) runs the callbacks that turn readiness NOT_SERVING and
    starts the one grace period that both doors share; `remaining` is what is left of it."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._deadline: float | None = None
        self._on_begin: list[Callable[[], Awaitable[None]]] = []

    def on_begin(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._on_begin.append(callback)

    @property
    def begun(self) -> bool:
        return self._deadline is not None

    async def begin(self) -> None:
        """Start draining (once; later calls change nothing)."""
        if self._deadline is not None:
            return
        self._deadline = time.monotonic() + self.grace
        for callback in self._on_begin:
            await callback()

    def remaining(self) -> float:
        """Seconds left of the grace period (all of it before `begin`)."""
        if self._deadline is None:
            return self.grace
        return max(0.0, self._deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started `taskgate serve`: the bound ports (useful when port 0 was asked for), and its
    drain."""

    grpc_port: int
    http_port: int
    drain: Drain = field(compare=False, repr=False)
    #: The certificates both doors serve (reloaded on SIGHUP); None when plaintext.
    tls: ServerTLS | None = field(default=None, compare=False, repr=False)
    #: Multi-user mode: reloads the policy (SIGHUP); None in single-user mode.
    reload_policy: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def reload(self) -> None:
        """SIGHUP: re-read the TLS certificates and the multi-user policy."""
        if self.tls is not None:
            self.tls.reload()
        if self.reload_policy is not None:
            self.reload_policy()


async def run_serve(settings: ServeSettings, *, reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    try:
        with SignalHandlers() as signals:
            async with serving(settings, reuse_port=reuse_port) as running:
                if running.tls is not None or running.reload_policy is not None:
                    signals.on(signal.SIGHUP, running.reload)
                log.info(
                    "taskgate ready: gRPC on %s:%d, REST on %s:%d",
                    settings.grpc_address.host,
                    running.grpc_port,
                    settings.http_address.host,
                    running.http_port,
                )
                await signals.stop.wait()
                lag = shutdown_lag(settings.grace_period, settings.shutdown_lag)
                log.info(
                    "shutting down: NOT_SERVING; accepting calls for %.1fs more, in-flight calls "
                    "finish within %.1fs of the signal",
                    lag,
                    settings.grace_period,
                )
                await running.drain.begin()
                await asyncio.sleep(lag)
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
        gate = _open_gate(settings)  # a bad policy stops start-up before anything runs
        if gate is not None:
            stack.push_async_callback(gate.close)
        dsn = await stack.enter_async_context(database_url(settings))
        pool = await stack.enter_async_context(migrated_pool(dsn, database_origin(settings)))
        store = TaskStore(pool)
        # Read (or create) the page-token key now, while the database is known to be up, so that
        # ListTasks validates before it ever needs the database (KFP's error order holds even
        # during an outage).
        await store.token_key()
        pipeline = CallPipeline(TaskService(store).methods(), gate)
        drain = Drain(settings.grace_period)

        server = create_grpc_server(
            pipeline,
            reuse_port=reuse_port,
            max_message_bytes=settings.max_message_bytes,
            max_concurrent_calls=settings.max_concurrent_calls,
        )
        health = Health(server, [SERVICE_NAME])
        await health.start()
        enable_reflection(server, [SERVICE_NAME])
        tls = _load_tls(settings)
        grpc_port = _bind_grpc(
            server, settings.grpc_address, None if tls is None else tls.grpc_credentials()
        )
        await server.start()
        # Both doors stop together, on one budget (REST's part starts after the lag).
        rest_door = AsyncExitStack()
        stack.push_async_callback(_stop_doors, server, rest_door, drain)

        routes = RouteTable.from_services([task_pb2.DESCRIPTOR.services_by_name["TaskService"]])
        app = create_gateway_app(
            routes,
            LocalInvoker(pipeline),
            rest_options(
                GatewayOptions.kfp(
                    max_body_bytes=settings.max_message_bytes,
                    max_concurrent_calls=settings.max_concurrent_calls,
                ),
                gate,
            ),
            health=health.is_serving,
            cors_origins=settings.cors_origins,
            fixed_json={KFP_HEALTHZ_PATH: kfp_healthz_body(multi_user=gate is not None)},
        )
        try:
            http_port = await start_http(
                rest_door,
                app,
                settings.http_address.rest_host,
                settings.http_address.port,
                reuse_port=reuse_port,
                ssl_context=None if tls is None else tls.ssl_context,
                shutdown_timeout=settings.grace_period
                - shutdown_lag(settings.grace_period, settings.shutdown_lag),
            )
        except OSError as error:
            raise StartupError(
                f"cannot listen for REST on {settings.http_address}: {error.strerror}"
            ) from None

        await health.set_serving()
        watch = asyncio.create_task(_watch_database(store, health, settings.health_interval))

        async def not_serving() -> None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await health.shut_down()

        drain.on_begin(not_serving)
        try:
            reload_policy = None if gate is None else PolicyReloader(gate, app)
            yield RunningServer(grpc_port, http_port, drain, tls, reload_policy)
        finally:
            await drain.begin()


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


def _open_gate(settings: ServeSettings) -> Gate | None:
    try:
        return open_gate(settings.authz_policy)
    except PolicyError as error:
        raise StartupError(f"bad --authz-policy: {error}") from None


def _load_tls(settings: ServeSettings) -> ServerTLS | None:
    if settings.tls is None:
        return None
    try:
        return ServerTLS(settings.tls)
    except TLSError as error:  # the files changed since the command line checked them
        raise StartupError(str(error)) from None


def _bind_grpc(
    server: grpc.aio.Server, address: Address, credentials: grpc.ServerCredentials | None
) -> int:
    try:
        if credentials is None:
            port = server.add_insecure_port(address.grpc_target)
        else:
            port = server.add_secure_port(address.grpc_target, credentials)
    except RuntimeError:
        port = 0
    if port == 0 and address.port != 0:
        raise StartupError(f"cannot listen for gRPC on {address}: address in use or unavailable")
    return port


async def _stop_doors(server: grpc.aio.Server, rest_door: AsyncExitStack, drain: Drain) -> None:
    """Close both listeners at once; in-flight calls on both finish within the drain's budget."""
    await drain.begin()
    await asyncio.gather(_stop_grpc(server, drain.remaining()), rest_door.aclose())


async def _stop_grpc(server: grpc.aio.Server, grace: float) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await server.stop(grace)
