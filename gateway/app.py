"""The aiohttp application: one catch-all handler that sequences the pure transcoder modules.

aiohttp is used only at the edges, and every other module of the gateway is pure: here (the
handler: request id, admission, routing, calls), `http_server.py` (starting the server, and
answering what its parser refuses), `streaming.py` (streams both ways), `trailers.py` (an answer
with HTTP trailers), `rpc_web_door.py` (gRPC-Web and Connect calls), `encoding.py`, `cors.py`
and `docs_ui.py` (gzip, CORS, `/openapi.json` and `/docs`) and `standalone.py` (the `gateway`
command). Every REST failure goes through `errors.status_from_exception` and one renderer, so
every REST error has the same JSON shape; gRPC-Web and Connect calls are told apart before
admission and answered, errors included, in their own protocol (docs/decisions.md T80).
HEAD is served only where a rule names it (KFP answers HEAD with 405), like any other method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

import grpc
from aiohttp import web
from google.protobuf import descriptor_pool as descriptor_pool_module

from taskgate import metrics, tracing
from taskgate.access import REQUEST_ID_HEADER, log_call, request_id
from taskgate.gateway import rpc_web_door
from taskgate.gateway.body import read_body
from taskgate.gateway.cors import install_cors
from taskgate.gateway.docs_ui import OpenApiCache, docs_response, is_docs_path
from taskgate.gateway.encoding import compress_response, may_compress, with_compression
from taskgate.gateway.errors import (
    TranscodeError,
    error_body,
    http_status_of,
    status_from_exception,
)
from taskgate.gateway.invoker import Invoker, StreamingInvoker, UnaryResult
from taskgate.gateway.json_codec import JSON_CONTENT_TYPE, render_response
from taskgate.gateway.media import check_request_media_type
from taskgate.gateway.metadata import call_options_from_headers, headers_from_metadata
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import MethodNotAllowed, NoRoute, Route, RouteMatch, RouteTable
from taskgate.gateway.streaming import request_messages, stream_response, unservable
from taskgate.gateway.trailers import TrailerResponse
from taskgate.rpc import CallOptions, RpcStatus, RpcStatusError

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
#: Liveness: 200 while the process can answer HTTP at all; never asks the database or the
#: upstream (readiness, `/healthz`, does), so an outage does not get the pod restarted.
LIVE_PATH = "/livez"
LIVE_BODY = b'{"status":"ALIVE"}'
TOO_MANY_REQUESTS = 429
#: `Retry-After` of a 429 from --max-concurrent-calls and of a 503 while not ready (T73).
RETRY_AFTER_SECONDS = "1"
HealthCheck = Callable[[], Awaitable[bool]]
#: Why no call can be served yet (`taskgate gateway` waiting for its upstream, T73), or None.
NotReady = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class GatewayState:
    routes: RouteTable
    invoker: Invoker
    options: GatewayOptions
    health: HealthCheck | None
    #: resolves `Any` error details; None: the default pool.
    pool: descriptor_pool_module.DescriptorPool | None
    #: `/openapi.json` of `routes`, built on first request (docs/decisions.md P10).
    openapi: OpenApiCache | None = None
    #: while it gives a reason, every request but `/livez` and `/metrics` is 503 (T73).
    not_ready: NotReady | None = None


@dataclass(slots=True)
class GatewayBox:
    """The app's current state; `replace_routes` swaps it, each request reads it once."""

    state: GatewayState
    #: calls being served now (`/healthz` aside), for --max-concurrent-calls.
    in_flight: int = 0


GATEWAY = web.AppKey("gateway", GatewayBox)
#: The request's id (taskgate/access.py), its RPC once routed, and its gRPC code if not OK.
REQUEST_ID = web.RequestKey("request_id", str)
_RPC = web.RequestKey("rpc", str)
_CODE = web.RequestKey("code", str)


def create_gateway_app(
    routes: RouteTable,
    invoker: Invoker,
    options: GatewayOptions,
    *,
    health: HealthCheck | None = None,
    descriptor_pool: descriptor_pool_module.DescriptorPool | None = None,
    cors_origins: tuple[str, ...] = (),
    fixed_json: Mapping[str, bytes] | None = None,
    comments: Mapping[str, str] | None = None,
    not_ready: NotReady | None = None,
) -> web.Application:
    """A REST application serving `routes` through `invoker`, plus `GET /healthz`, `GET /livez`
    and `GET` of each path in `fixed_json` (answered with its JSON bytes); CORS for
    `cors_origins` (none: no CORS at all). While `not_ready` gives a reason, every other request
    is 503 UNAVAILABLE with that message (T73)."""
    app = web.Application(client_max_size=options.max_body_bytes)
    openapi = OpenApiCache(routes, options, comments=comments)  # `comments`: proto comments
    app[GATEWAY] = GatewayBox(
        GatewayState(routes, invoker, options, health, descriptor_pool, openapi, not_ready)
    )
    # T49: gzip for clients that accept it; `handle` compresses its own answers (P40).
    app.router.add_get(METRICS_PATH, with_compression(_metrics_response))
    # Constant answers, before the catch-all: no database, no call limit (docs/decisions.md P10).
    for path, body in {LIVE_PATH: LIVE_BODY, **(fixed_json or {})}.items():
        app.router.add_get(path, with_compression(_fixed_json(body)))
    app.router.add_route("*", "/{path:.*}", handle)
    app.on_response_prepare.append(_echo_request_id)
    if cors_origins:
        install_cors(app, frozenset(origin.lower() for origin in cors_origins))
    return app


def replace_routes(
    app: web.Application,
    routes: RouteTable,
    invoker: Invoker,
    descriptor_pool: descriptor_pool_module.DescriptorPool | None = None,
    comments: Mapping[str, str] | None = None,
) -> None:
    """Serve `routes` through `invoker` from the next request on; calls in flight finish as is."""
    box = app[GATEWAY]
    openapi = OpenApiCache(routes, box.state.options, comments=comments)
    box.state = replace(
        box.state, routes=routes, invoker=invoker, pool=descriptor_pool, openapi=openapi
    )


async def handle(request: web.Request) -> web.StreamResponse:
    """Every request, observed (docs/decisions.md P5, P10, P11): its request id (the caller's
    `X-Request-Id` if sane, else a new one; echoed, forwarded as `x-request-id`), one access
    line, and the call metrics of its door (REST, gRPC-Web or Connect: T80), with the gRPC code
    its answer carries. A complete answer is gzipped here when the client accepts it (T49)."""
    if request.raw_path.partition("?")[0] == HEALTH_PATH:
        return await _admit(request)
    started = time.perf_counter()
    rid = request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    code = "CANCELLED"  # the client went away: CancelledError
    status: int | None = None
    # P13: a SERVER span continuing the caller's `traceparent`, current while the call runs.
    parent = tracing.context_from_headers(request.headers)
    traced = tracing.start_server_span(request.method, parent)
    # T80: told apart before admission, so the gauge, the metrics, the access line and a 429
    # are the call's own door's.
    web_call = _classify(request, request.app[GATEWAY].state)
    door = metrics.REST if web_call is None else web_call.door
    try:
        with metrics.in_flight(door):
            response = await _admit(request, web_call)
            if may_compress(response):
                await compress_response(request, response)
        code, status = request.get(_CODE, "OK"), response.status
        return response
    finally:
        method = request.get(_RPC, "")
        seconds = time.perf_counter() - started
        metrics.observe_call(method, door, code, seconds)
        log_call(door, method, code, seconds, request.remote or "", rid, status)
        traced.end(method, code, status)


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """X-Request-Id on every response that has one, streams and errors included."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid


def _fixed_json(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=JSON_CONTENT_TYPE)

    return answer


async def _metrics_response(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text (taskgate/metrics.py), readiness checked first."""
    health = request.app[GATEWAY].state.health
    metrics.READY.set(1 if health is None or await _is_healthy(health) else 0)
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response


def _classify(request: web.Request, state: GatewayState) -> rpc_web_door.WebCall | None:
    """A gRPC-Web or Connect call (T80), named for the metrics and the access line; None: REST."""
    path = request.raw_path.partition("?")[0]
    content_type = request.headers.get("Content-Type", "")
    web_call = rpc_web_door.classify(request.method, path, content_type, state.routes.methods)
    if web_call is not None:
        request[_RPC] = web_call.full_method
    return web_call


async def _admit(
    request: web.Request, web_call: rpc_web_door.WebCall | None = None
) -> web.StreamResponse:
    """Every request: route, build, call, render; or one error response, every failure
    rendered the same way (CancelledError passes).

    At most `max_concurrent_calls` run at once; past that, 429 at once (never a queue), in the
    call's protocol (T80), except for `/healthz`, which keeps answering under load
    (docs/decisions.md P3)."""
    box = request.app[GATEWAY]
    state = box.state
    counted = request.raw_path.partition("?")[0] != HEALTH_PATH
    if counted:
        limit = state.options.max_concurrent_calls
        if box.in_flight >= limit:
            request[_CODE] = grpc.StatusCode.RESOURCE_EXHAUSTED.name
            if web_call is not None:
                return await rpc_web_door.refuse(request, web_call, _too_many_calls(limit))
            return error_response(_too_many_calls(limit), state)
        box.in_flight += 1
    try:
        return await _serve(request, state, web_call)
    except Exception as exc:
        status = status_from_exception(exc)  # logs an unexpected one: once
        request[_CODE] = status.code.name
        return error_response(exc, state, status)
    finally:
        if counted:
            box.in_flight -= 1


def _too_many_calls(limit: int) -> TranscodeError:
    return TranscodeError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"too many calls in flight (at most {limit}); try again later",
        http_status=TOO_MANY_REQUESTS,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _serve(
    request: web.Request, state: GatewayState, web_call: rpc_web_door.WebCall | None
) -> web.StreamResponse:
    if state.not_ready is not None:
        _check_ready(state.not_ready)
    path, _, query = request.raw_path.partition("?")
    if path == HEALTH_PATH and request.method == "GET":
        return await _health_response(state)
    if web_call is not None:  # T80: gRPC-Web or Connect, told apart from REST by Content-Type
        context = rpc_web_door.Context(
            state.invoker, state.options, state.pool, request.get(REQUEST_ID)
        )
        answer, request[_CODE] = await rpc_web_door.serve(request, web_call, context)
        return answer
    try:
        match = _match(state.routes, request.method, path)
    except TranscodeError:
        # P10: /openapi.json and /docs answer only where no route of a service matches.
        if state.openapi is None or not is_docs_path(request.method, path):
            raise
        built_in = docs_response(path, state.openapi)
        if built_in is None:
            raise
        return built_in
    request[_RPC] = match.route.rpc
    check_request_media_type(match.route, request.headers.get("Content-Type", ""))  # D16
    call_options = call_options_from_headers(
        request.headers,
        state.options,
        streaming=match.route.server_streaming,
        remote=request.remote,
        request_id=request.get(REQUEST_ID),  # P11: passed on as metadata
    )
    if match.route.client_streaming:  # T62: NDJSON requests, read as they arrive
        return await _request_stream(request, state, match, query, call_options)
    body = await _read_body(request, match, state.options)
    content_type = request.headers.get("Content-Type", "")
    message = build_request(match, query, body, content_type, state.options)
    route = match.route
    if route.server_streaming:
        stream = state.invoker.server_stream(route.rpc, message, call_options)
        return await stream_response(request, route, stream, state.options)
    result = await state.invoker.unary(route.rpc, message, call_options)
    return _unary_response(state, route, result)


def _check_ready(not_ready: NotReady) -> None:
    """T73: 503 UNAVAILABLE with the reason (and `Retry-After: 1`) until there is none."""
    reason = not_ready()
    if reason is not None:
        raise TranscodeError(
            grpc.StatusCode.UNAVAILABLE, reason, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )


async def _request_stream(
    request: web.Request,
    state: GatewayState,
    match: RouteMatch,
    query: str,
    call_options: CallOptions,
) -> web.StreamResponse:
    """A client-streaming or bidirectional call (T62): 501 naming the method when this route
    or this invoker cannot carry it."""
    route, invoker = match.route, state.invoker
    if not isinstance(invoker, StreamingInvoker):
        reason: str | None = "this gateway cannot stream requests to its service"
    else:
        reason = unservable(route)
    if reason is not None:
        raise TranscodeError(grpc.StatusCode.UNIMPLEMENTED, f"{route.method.full_name}: {reason}")
    assert isinstance(invoker, StreamingInvoker)  # noqa: S101 (narrowing only)
    requests = request_messages(
        request.content,
        match,
        query,
        content_type=request.headers.get("Content-Type", ""),
        content_encoding=request.headers.get("Content-Encoding", ""),
        options=state.options,
    )
    if route.server_streaming:
        stream = invoker.bidi_stream(route.rpc, requests, call_options)
        return await stream_response(request, route, stream, state.options)
    result = await invoker.client_stream(route.rpc, requests, call_options)
    return _unary_response(state, route, result)


def _unary_response(state: GatewayState, route: Route, result: UnaryResult) -> web.Response:
    """Header metadata as `Grpc-Metadata-*`; trailing metadata as HTTP trailers (T60), sent
    when the preset always sends them or the client asked with `TE: trailers`."""
    rendered = render_response(
        result.response, route.response_body_descriptor, state.options, route.pool
    )
    headers = [("Content-Type", rendered.content_type)]
    trailers: list[tuple[str, str]] = []
    if result.header_metadata or result.trailing_metadata:  # most answers carry none
        headers += headers_from_metadata(result.header_metadata)
        trailers = headers_from_metadata((), result.trailing_metadata)
    if not trailers:  # a plain answer, with its Content-Length (gzipped in `handle`)
        response = web.Response(body=rendered.body)
        for name, value in headers:
            response.headers.add(name, value)
        return response
    return TrailerResponse(
        body=rendered.body,
        headers=headers,
        trailers=trailers,
        always=state.options.always_send_trailers,
    )


def _match(routes: RouteTable, http_method: str, path: str) -> RouteMatch:
    found = routes.match(http_method, path)
    if isinstance(found, NoRoute):
        raise TranscodeError(grpc.StatusCode.NOT_FOUND, "Not Found", http_status=404)
    if isinstance(found, MethodNotAllowed):
        allow = ", ".join(sorted(found.allowed))
        raise TranscodeError(
            grpc.StatusCode.UNIMPLEMENTED,
            "Method Not Allowed",
            http_status=405,
            headers={"Allow": allow},
        )
    return found


async def _read_body(request: web.Request, match: RouteMatch, options: GatewayOptions) -> bytes:
    if not request.body_exists:
        return b""
    if match.route.body_field is None:
        # T33: ignored (aiohttp drains it), except in strict mode, where it is an error.
        if options.strict and await request.content.read(1):
            raise TranscodeError.invalid(
                f"{match.route.http_method} {match.route.template.text} takes no request body"
            )
        return b""
    # P2: decompressed here, bounded while streaming (http_server.py turns aiohttp's off).
    return await read_body(
        request.content,
        content_encoding=request.headers.get("Content-Encoding", ""),
        content_length=request.content_length,
        limit=options.max_body_bytes,
        seconds=options.body_timeout,
    )


async def _health_response(state: GatewayState) -> web.Response:
    if state.health is not None and not await _is_healthy(state.health):
        raise TranscodeError(grpc.StatusCode.UNAVAILABLE, "not serving")
    return web.Response(body=b'{"status":"SERVING"}', content_type=JSON_CONTENT_TYPE)


async def _is_healthy(health: HealthCheck) -> bool:
    try:
        return await health()
    except Exception:
        log.exception("health check failed")
        return False


def error_response(
    exc: BaseException, state: GatewayState, status: RpcStatus | None = None
) -> web.Response:
    """The one renderer of errors: status from `errors` (unless given), body in the configured
    style; a failed call's metadata as `Grpc-Metadata-*` headers and trailers (T61)."""
    if status is None:
        status = status_from_exception(exc)
    options = state.options
    body = error_body(
        status,
        options.error_style,
        state.pool,
        use_proto_field_names=options.use_proto_field_names,
    )
    headers, trailers = [("Content-Type", JSON_CONTENT_TYPE)], []
    if isinstance(exc, RpcStatusError):
        headers += headers_from_metadata(exc.header_metadata)
        trailers = headers_from_metadata((), exc.trailing_metadata)
    response: web.Response
    if trailers:
        response = TrailerResponse(
            status=http_status_of(exc, status),
            body=body,
            headers=headers,
            trailers=trailers,
            always=options.always_send_trailers,
        )
    else:
        response = web.Response(status=http_status_of(exc, status), body=body)
        for name, value in headers:
            response.headers.add(name, value)
    if isinstance(exc, TranscodeError):
        response.headers.update(exc.headers)
    return response
