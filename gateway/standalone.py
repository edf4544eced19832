"""`taskgate gateway`: REST for any gRPC server, discovered at start-up (and on refresh).

Discovery (reflection, or a descriptor set) → RouteTable → the same aiohttp app `taskgate serve`
uses, with a GrpcInvoker over one channel to the upstream. Refresh (every `refresh_interval`
seconds, or on SIGHUP) re-discovers and swaps the routes in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2

from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_LAG,
    SignalHandlers,
    shutdown_lag,
)
from taskgate.gateway.app import create_gateway_app, replace_routes
from taskgate.gateway.discovery import (
    DiscoveredServices,
    DiscoveryError,
    discover_services,
    load_descriptor_set,
)
from taskgate.gateway.http_rules import RouteConfigError
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.gateway.upstream import GrpcInvoker, open_upstream_channel
from taskgate.tls import ServerTLS, ServerTLSFiles, TLSError, UpstreamTLS

log = logging.getLogger(__name__)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_TIMEOUT_SECONDS = 2.0


class GatewayStartupError(Exception):
    """The gateway cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class StandaloneConfig:
    """What `taskgate gateway` was asked to do."""

    upstream: str
    host: str = DEFAULT_HTTP_ADDRESS.host
    port: int = DEFAULT_HTTP_ADDRESS.port
    options: GatewayOptions = field(default_factory=GatewayOptions.generic)
    descriptor_set: Path | None = None
    #: seconds between re-discoveries; 0 never (SIGHUP still refreshes).
    refresh_interval: float = 0.0
    #: --shutdown-grace: seconds after SIGTERM within which in-flight calls finish.
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    #: --shutdown-lag: seconds after SIGTERM that the listener keeps accepting, /healthz 503.
    shutdown_lag: float = DEFAULT_SHUTDOWN_LAG
    #: --tls-cert, --tls-key, --tls-client-ca: serve HTTPS; None serves plaintext HTTP.
    tls: ServerTLSFiles | None = None
    #: --upstream-tls and its options; None: a plaintext channel to the upstream.
    upstream_tls: UpstreamTLS | None = None
    #: --cors-origin: origins whose pages may call the gateway from a browser (CORS).
    cors_origins: tuple[str, ...] = ()


async def run_gateway(config: StandaloneConfig) -> int:
    """Serve until SIGTERM/SIGINT (SIGHUP refreshes); return the exit code."""
    try:
        with SignalHandlers() as signals:
            async with gateway_serving(config) as running:
                signals.on(signal.SIGHUP, running.request_refresh)
                if running.tls is not None:
                    signals.on(signal.SIGHUP, running.tls.reload)
                log.info(
                    "taskgate gateway ready: REST on %s:%d for %s (%d routes)",
                    config.host,
                    running.port,
                    config.upstream,
                    len(running.routes.routes),
                )
                await signals.stop.wait()
                lag = shutdown_lag(config.shutdown_grace, config.shutdown_lag)
                log.info(
                    "shutting down: /healthz 503; accepting calls for %.1fs more, in-flight "
                    "calls finish within %.1fs of the signal",
                    lag,
                    config.shutdown_grace,
                )
                running.draining = True
                await asyncio.sleep(lag)
    except GatewayStartupError as error:
        log.error("cannot start: %s", error)
        return 1
    log.info("stopped")
    return 0


class RunningGateway:
    """A started gateway: its port, its current routes, and a way to ask for a refresh."""

    def __init__(self, port: int, routes: RouteTable) -> None:
        self.port = port
        self.routes = routes
        #: The certificates HTTPS serves (reloaded on SIGHUP); None when plaintext.
        self.tls: ServerTLS | None = None
        #: Set on SIGTERM: /healthz answers 503 from then on.
        self.draining = False
        self._refresh = asyncio.Event()

    def request_refresh(self) -> None:
        self._refresh.set()

    async def refresh_requested(self, interval: float) -> None:
        """Wait for a refresh request (or for `interval` seconds, when positive)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval if interval > 0 else None):
                await self._refresh.wait()
        self._refresh.clear()


@asynccontextmanager
async def gateway_serving(config: StandaloneConfig) -> AsyncIterator[RunningGateway]:
    """The gateway, started; stopped on exit."""
    async with AsyncExitStack() as stack:
        channel = open_upstream_channel(
            config.upstream,
            max_message_bytes=config.options.max_body_bytes,
            tls=config.upstream_tls,
        )
        stack.push_async_callback(channel.close)
        discovered = await _discover(channel, config)
        routes = _route_table(discovered, config.upstream)
        invoker = GrpcInvoker(channel, upstream=config.upstream, pool=discovered.pool)

        running: RunningGateway | None = None

        async def upstream_healthy() -> bool:
            if running is not None and running.draining:
                return False
            return await _upstream_healthy(channel)

        app = create_gateway_app(
            routes,
            invoker,
            config.options,
            health=upstream_healthy,
            descriptor_pool=discovered.pool,
            cors_origins=config.cors_origins,
            comments=discovered.comments,
        )
        tls = _load_tls(config)
        try:
            port = await start_http(
                stack,
                app,
                config.host,
                config.port,
                ssl_context=None if tls is None else tls.ssl_context,
                shutdown_timeout=config.shutdown_grace
                - shutdown_lag(config.shutdown_grace, config.shutdown_lag),
            )
        except OSError as error:
            raise GatewayStartupError(
                f"cannot listen on {config.host}:{config.port}: {error.strerror}"
            ) from None
        running = RunningGateway(port, routes)
        running.tls = tls
        refresher = asyncio.create_task(_refresh_forever(app, channel, config, running))
        stack.push_async_callback(_cancel, refresher)
        yield running


def _load_tls(config: StandaloneConfig) -> ServerTLS | None:
    if config.tls is None:
        return None
    try:
        return ServerTLS(config.tls)
    except TLSError as error:  # the files changed since the command line checked them
        raise GatewayStartupError(str(error)) from None


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _discover(channel: grpc.aio.Channel, config: StandaloneConfig) -> DiscoveredServices:
    try:
        if config.descriptor_set is not None:
            return load_descriptor_set(config.descriptor_set)
        return await discover_services(channel, target=config.upstream)
    except DiscoveryError as error:
        raise GatewayStartupError(str(error)) from None


def _route_table(discovered: DiscoveredServices, upstream: str) -> RouteTable:
    try:
        routes = RouteTable.from_services(discovered.services)
    except RouteConfigError as error:
        raise GatewayStartupError(f"{upstream}: {error}") from None
    if not routes.routes:
        names = ", ".join(s.full_name for s in discovered.services) or "none"
        raise GatewayStartupError(
            f"upstream {upstream} has no method with a google.api.http option "
            f"(services found: {names})"
        )
    return routes


async def _refresh_forever(
    app: web.Application,
    channel: grpc.aio.Channel,
    config: StandaloneConfig,
    running: RunningGateway,
) -> None:
    while True:
        await running.refresh_requested(config.refresh_interval)
        try:
            discovered = await _discover(channel, config)
            routes = _route_table(discovered, config.upstream)
        except GatewayStartupError as error:
            log.warning("refresh failed, keeping the current routes: %s", error)
            continue
        except Exception:  # a bug must not end refreshing for the life of the process
            log.exception("refresh failed, keeping the current routes")
            continue
        replace_routes(
            app,
            routes,
            GrpcInvoker(channel, upstream=config.upstream, pool=discovered.pool),
            discovered.pool,
            comments=discovered.comments,
        )
        running.routes = routes
        log.info("refreshed: %d routes from %s", len(routes.routes), config.upstream)


async def _upstream_healthy(channel: grpc.aio.Channel) -> bool:
    """SERVING from the upstream's health service; an upstream without one counts if reachable."""
    check = channel.unary_unary(
        HEALTH_CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    try:
        reply = await check(health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        return bool(error.code() == grpc.StatusCode.UNIMPLEMENTED)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
