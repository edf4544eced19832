"""`taskgate gateway`: REST for any gRPC server, discovered at start-up (and on refresh).

Discovery (reflection, or a descriptor set) → RouteTable → the same aiohttp app `taskgate serve`
uses, with a GrpcInvoker over one channel to the upstream. Refresh (every `refresh_interval`
seconds, or on SIGHUP) re-discovers and swaps the routes in place.

An upstream that is not up yet is waited for (`wait_for_upstream`, what the command does;
docs/decisions.md T73): a sidecar starts before or beside its server, and exiting would only get
it restarted in a loop. Until discovery succeeds every request but `/livez` and `/metrics` is 503
UNAVAILABLE naming the upstream. Only what waiting cannot fix ends the process: a bad descriptor
set, an upstream that answers but without reflection or routes, a route it cannot serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from aiohttp import web
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2

from taskgate import __version__
from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SHUTDOWN_LAG,
    SignalHandlers,
    shutdown_lag,
)
from taskgate.gateway.app import NotReady, create_gateway_app, replace_routes
from taskgate.gateway.discovery import (
    DetailTypes,
    DiscoveredServices,
    DiscoveryError,
    discover_services,
    load_descriptor_set,
)
from taskgate.gateway.h2channel import FastUnary
from taskgate.gateway.http_rules import RouteConfigError
from taskgate.gateway.http_server import start_http
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable
from taskgate.gateway.upstream import GrpcInvoker, open_upstream_channel
from taskgate.logs import RateLimitedLog
from taskgate.tls import ServerTLS, ServerTLSFiles, TLSError, UpstreamTLS

log = logging.getLogger(__name__)
#: "still waiting for the upstream": one line a minute at most, with a count (T73).
_waiting = RateLimitedLog(log, 60.0)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_TIMEOUT_SECONDS = 2.0
#: Seconds between discovery attempts while the upstream is not up: doubling from the first to
#: the last (T73).
FIRST_RETRY_SECONDS = 0.25
MAX_RETRY_SECONDS = 10.0


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
    #: --upstream-client event-loop: unary calls to a plaintext upstream on the event-loop
    #: HTTP/2 client (h2channel.py, P37) while it can carry them; False: grpc.aio only.
    event_loop_client: bool = True
    #: --cors-origin: origins whose pages may call the gateway from a browser (CORS).
    cors_origins: tuple[str, ...] = ()
    #: an upstream that cannot be reached yet is waited for, every route 503 meanwhile (T73);
    #: False: a start-up error. The command (`run_gateway`) always waits.
    wait_for_upstream: bool = False


async def run_gateway(config: StandaloneConfig) -> int:
    """Serve until SIGTERM/SIGINT (SIGHUP refreshes); return the exit code. The command waits
    for an upstream that is not up yet (T73)."""
    config = replace(config, wait_for_upstream=True)
    try:
        with SignalHandlers() as signals:
            async with gateway_serving(config) as running:
                signals.on(signal.SIGHUP, running.request_refresh)
                if running.tls is not None:
                    signals.on(signal.SIGHUP, running.tls.reload)
                if running.ready:
                    log.info(
                        "taskgate gateway ready: REST on %s:%d for %s (%d routes)",
                        config.host,
                        running.port,
                        config.upstream,
                        len(running.routes.routes),
                    )
                else:
                    log.info(
                        "taskgate gateway listening on %s:%d, waiting for %s",
                        config.host,
                        running.port,
                        config.upstream,
                    )
                await running.stopped(signals.stop)
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

    def __init__(self, port: int, routes: RouteTable, readiness: Readiness | None = None) -> None:
        self.port = port
        self.routes = routes
        #: The certificates HTTPS serves (reloaded on SIGHUP); None when plaintext.
        self.tls: ServerTLS | None = None
        #: Set on SIGTERM: /healthz answers 503 from then on.
        self.draining = False
        self.readiness = readiness if readiness is not None else Readiness(ready=True)
        #: The event-loop client unary calls go through (P37); None: grpc.aio only.
        self.fast: FastUnary | None = None
        self._refresh = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Whether the upstream's services have been discovered (T73)."""
        return self.readiness.ready

    async def stopped(self, stop: asyncio.Event) -> None:
        """Wait for `stop`; GatewayStartupError if waiting for the upstream ended in a definite
        error first."""
        fatal = asyncio.ensure_future(self.readiness.fatal)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((fatal, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not fatal.done():
                fatal.cancel()
        if fatal.done() and not fatal.cancelled():
            raise fatal.result()

    def request_refresh(self) -> None:
        self._refresh.set()

    async def refresh_requested(self, interval: float) -> None:
        """Wait for a refresh request (or for `interval` seconds, when positive)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval if interval > 0 else None):
                await self._refresh.wait()
        self._refresh.clear()


class Readiness:
    """Whether the gateway serves its upstream yet; until then, why not (T73)."""

    def __init__(self, *, ready: bool, reason: str = "") -> None:
        self.ready = ready
        self.reason = reason
        #: set to the GatewayStartupError that ends waiting for good (no retry can fix it).
        self.fatal: asyncio.Future[GatewayStartupError] = asyncio.get_running_loop().create_future()

    def fail(self, error: GatewayStartupError) -> None:
        if not self.fatal.done():
            self.fatal.set_result(error)


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
        fast = _fast_unary(config)
        if fast is not None:
            stack.push_async_callback(fast.close)
        try:
            discovered: DiscoveredServices | None = await _discover(channel, config)
            readiness = Readiness(ready=True)
        except _RetryableError as waiting:
            discovered = None
            readiness = Readiness(ready=False, reason=str(waiting))
            _waiting.warning("waiting", "%s; retrying until it answers", waiting)
        if discovered is not None:
            routes = _route_table(discovered, config)
            pool = discovered.pool
            if fast is not None:
                await _connect_fast(fast, config)
        else:  # T73: nothing to serve yet; the app answers 503 until discovery succeeds
            routes, pool = RouteTable(()), descriptor_pool.DescriptorPool()
        invoker = _invoker(channel, config, pool, fast)

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
            descriptor_pool=pool,
            cors_origins=config.cors_origins,
            comments=None if discovered is None else discovered.comments,
            not_ready=_not_ready(readiness, config.upstream),
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
        running = RunningGateway(port, routes, readiness)
        running.tls = tls
        running.fast = fast
        refresher = asyncio.create_task(_discover_then_refresh(app, channel, config, running))
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


class _RetryableError(GatewayStartupError):
    """Discovery failed in a way waiting may fix (the upstream is not up yet), and the
    configuration asks to wait."""


async def _discover(channel: grpc.aio.Channel, config: StandaloneConfig) -> DiscoveredServices:
    try:
        if config.descriptor_set is not None:
            return load_descriptor_set(config.descriptor_set)
        return await discover_services(channel, target=config.upstream)
    except DiscoveryError as error:
        if error.retryable and config.wait_for_upstream:
            raise _RetryableError(str(error)) from None
        raise GatewayStartupError(str(error)) from None


async def _connect_fast(fast: FastUnary, config: StandaloneConfig) -> None:
    """The event-loop client's connection, opened now if the upstream has just answered
    reflection (so the first calls use it), else in the background: a descriptor set starts
    the gateway at once, whether or not its upstream is there (T73)."""
    if config.descriptor_set is None:
        await fast.connect()
    else:
        fast.connect_soon()


def _fast_unary(config: StandaloneConfig) -> FastUnary | None:
    """The event-loop client for unary calls (P37), unless told not to or the upstream is TLS."""
    if not config.event_loop_client or config.upstream_tls is not None:
        return None
    return FastUnary(
        config.upstream,
        max_message_bytes=config.options.max_body_bytes,
        user_agent=f"taskgate-gateway/{__version__}",
    )


def _invoker(
    channel: grpc.aio.Channel,
    config: StandaloneConfig,
    pool: descriptor_pool.DescriptorPool,
    fast: FastUnary | None,
) -> GrpcInvoker:
    """The invoker for routes discovered into `pool`; detail types it lacks are looked up
    through the upstream's reflection (T74)."""
    details = DetailTypes(channel, pool)
    return GrpcInvoker(
        channel, upstream=config.upstream, pool=pool, resolve_details=details.resolve, fast=fast
    )


async def _serve_discovered(
    app: web.Application,
    channel: grpc.aio.Channel,
    config: StandaloneConfig,
    running: RunningGateway,
    discovered: DiscoveredServices,
    routes: RouteTable,
) -> None:
    """Serve `routes` (built from `discovered`) from the next request on."""
    if running.fast is not None:
        await _connect_fast(running.fast, config)
    invoker = _invoker(channel, config, discovered.pool, running.fast)
    replace_routes(app, routes, invoker, discovered.pool, comments=discovered.comments)
    running.routes = routes


def _not_ready(readiness: Readiness, upstream: str) -> NotReady:
    """Why the app answers 503 UNAVAILABLE naming the upstream, until it has been discovered
    (T73); app.py answers it like any error, so it is logged, counted and has a request id."""

    def reason() -> str | None:
        if readiness.ready:
            return None
        return f"upstream {upstream} is not ready: {readiness.reason}"

    return reason


async def _discover_then_refresh(
    app: web.Application,
    channel: grpc.aio.Channel,
    config: StandaloneConfig,
    running: RunningGateway,
) -> None:
    if not running.ready:
        try:
            await _wait_for_upstream(app, channel, config, running)
        except GatewayStartupError as error:
            log.error("giving up on upstream %s: %s", config.upstream, error)
            running.readiness.fail(error)
            return
    await _refresh_forever(app, channel, config, running)


async def _wait_for_upstream(
    app: web.Application,
    channel: grpc.aio.Channel,
    config: StandaloneConfig,
    running: RunningGateway,
) -> None:
    """Discover until it works (T73): retries back off from FIRST_RETRY_SECONDS to
    MAX_RETRY_SECONDS; GatewayStartupError once the upstream answers in a way that waiting
    cannot fix."""
    delay = FIRST_RETRY_SECONDS
    attempts = 1
    while True:
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_SECONDS)
        attempts += 1
        try:
            discovered = await _discover(channel, config)
        except _RetryableError as waiting:
            running.readiness.reason = str(waiting)
            _waiting.warning("waiting", "still waiting (%d attempts): %s", attempts, waiting)
            continue
        except GatewayStartupError:
            raise
        except Exception:  # a bug must not leave the gateway waiting for good without a word
            log.exception("discovery failed; retrying")
            continue
        routes = _route_table(discovered, config)
        await _serve_discovered(app, channel, config, running, discovered, routes)
        running.readiness.ready = True
        log.info(
            "upstream %s is up after %d attempts: serving %d routes",
            config.upstream,
            attempts,
            len(routes.routes),
        )
        return


def _route_table(discovered: DiscoveredServices, config: StandaloneConfig) -> RouteTable:
    """The upstream's routes; a bad binding is skipped with a warning, or under --strict
    refuses them all (docs/decisions.md T51)."""
    upstream = config.upstream
    try:
        routes = RouteTable.from_services(discovered.services, strict=config.options.strict)
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
            routes = _route_table(discovered, config)
        except GatewayStartupError as error:
            log.warning("refresh failed, keeping the current routes: %s", error)
            continue
        except Exception:  # a bug must not end refreshing for the life of the process
            log.exception("refresh failed, keeping the current routes")
            continue
        await _serve_discovered(app, channel, config, running, discovered, routes)
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
