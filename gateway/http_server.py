"""Run a gateway app on a TCP port: the one place both commands start aiohttp.

Limits follow Go's net/http, which KFP's gateway runs on (1 MiB of request line and headers):
aiohttp's 8 KiB default would turn a long filter or page token into its own plain-text 400.
Malformed HTTP (the client's fault) is logged as one warning line, not an error traceback.

Bounded (docs/decisions.md P2): a connection must send a complete request head within
IDLE_TIMEOUT_SECONDS of opening or of its previous response, or it is closed; so are idle
keep-alive connections (aiohttp's keep-alive timer covers both, since it runs from the moment a
connection opens until a whole head has arrived). aiohttp's own body decompression is off: it
inflates a whole body before any size check, so the doors read bodies themselves: REST
(app.py) and gRPC-Web and Connect (rpc_web_door.py) inflate them, bounded, and bound the time
they may take to arrive (body.py); a streamed request (streaming.py) is bounded line by line and
takes no compression.

Every answer is the JSON error shape (docs/decisions.md T52), even for requests the app never
sees: aiohttp answers a request it cannot parse itself, in plain text that quotes the request's
bytes back. `_JsonErrorHandler` gives those the configured error style instead, with a fixed
message per kind of fault (400; 414 for a request line too long, 431 for headers), and the
connection is closed. `OPTIONS *` (a target no route can match) is answered as Go's net/http,
which KFP's gateway runs on, answers it: 200 with an empty body.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import ClassVar, cast

import grpc
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

from taskgate.gateway.app import GATEWAY
from taskgate.gateway.errors import INTERNAL_ERROR_MESSAGE, error_body
from taskgate.gateway.json_codec import JSON_CONTENT_TYPE
from taskgate.gateway.options import ErrorStyle
from taskgate.rpc import RpcStatus

log = logging.getLogger(__name__)

MAX_REQUEST_LINE_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a connection may sit without a complete request head (slow headers, idle keep-alive).
IDLE_TIMEOUT_SECONDS = 5.0


class _ClientErrorFilter(logging.Filter):
    """aiohttp logs a malformed request with a traceback at ERROR; it is the client's error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, http_exceptions.BadHttpMessage):
            log.warning("rejected a malformed HTTP request: %s", str(error).splitlines()[0])
            return False
        return True


_filter = _ClientErrorFilter()

URI_TOO_LONG = 414
HEADERS_TOO_LARGE = 431
#: aiohttp's message for more than its 128 header lines (it has no exception class of its own).
_TOO_MANY_HEADERS = "Too many headers received"


def malformed_request_status(status: int, exc: BaseException | None) -> tuple[int, RpcStatus]:
    """The HTTP status and error of a request aiohttp could not parse (or, rarely, one its own
    machinery failed: 500, 504); the message names the fault, never the request's bytes."""
    if status >= 500:
        if status == 504:
            return status, RpcStatus(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        return status, RpcStatus(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_MESSAGE)
    if isinstance(exc, http_exceptions.LineTooLong):
        if exc.args[1:2] == (MAX_REQUEST_LINE_BYTES,):
            status = URI_TOO_LONG
            message = f"request line longer than {MAX_REQUEST_LINE_BYTES} bytes"
        else:
            status, message = HEADERS_TOO_LARGE, f"header longer than {MAX_HEADER_BYTES} bytes"
    elif isinstance(exc, http_exceptions.BadHttpMessage) and exc.message == _TOO_MANY_HEADERS:
        status, message = HEADERS_TOO_LARGE, "too many headers"
    elif isinstance(exc, http_exceptions.BadHttpMethod):
        message = "malformed HTTP request: bad method (or not HTTP at all)"
    elif isinstance(exc, http_exceptions.BadStatusLine):
        message = "malformed HTTP request line"
    elif isinstance(exc, http_exceptions.InvalidURLError):
        message = "malformed request target"
    elif isinstance(exc, http_exceptions.InvalidHeader):
        message = "malformed header"
    else:
        message = "malformed HTTP request"
    return status, RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, message)


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, but a request it cannot parse gets the JSON error shape."""

    __slots__ = ()
    error_style: ClassVar[ErrorStyle] = "status"

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs it (filtered above), and raises if a response already began.
        super().handle_error(request, status, exc, message)
        http_status, error = malformed_request_status(status, exc)
        response = web.Response(
            status=http_status,
            body=error_body(error, self.error_style),
            content_type=JSON_CONTENT_TYPE,
        )
        response.force_close()
        return response


class _KfpErrorHandler(_JsonErrorHandler):
    __slots__ = ()
    error_style: ClassVar[ErrorStyle] = "kfp"


_HANDLERS: dict[ErrorStyle, type[_JsonErrorHandler]] = {
    "status": _JsonErrorHandler,
    "kfp": _KfpErrorHandler,
}


class _JsonErrorServer(web.Server):
    """Makes a `_JsonErrorHandler` of the app's error style for each connection."""

    handler_class: type[_JsonErrorHandler] = _JsonErrorHandler

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = self.handler_class  # same layout: it only overrides a method
        return handler


class _JsonErrorRunner(web.AppRunner):
    """AppRunner whose server is a `_JsonErrorServer`: aiohttp builds the server itself, with
    the app's handler and every connection setting, so it is adopted rather than rebuilt."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        adopted = cast(_JsonErrorServer, server)
        adopted.request_handler = _answering_options_star(adopted.request_handler)
        box = self.app.get(GATEWAY)
        adopted.handler_class = _HANDLERS[
            "status" if box is None else box.state.options.error_style
        ]
        return adopted


RequestHandlerFunc = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


async def _server_wide_options() -> web.StreamResponse:
    """`OPTIONS *` asks about the server, not a resource: 200, empty, as Go's net/http answers
    (T52). The router, which matches paths only, would answer it with a text 404."""
    return web.Response(status=200)


def _answering_options_star(app_handler: RequestHandlerFunc) -> RequestHandlerFunc:
    """The app's request handler, with `OPTIONS *` answered before it. Not a middleware, and
    not a coroutine of its own: every other request costs one comparison more (P40)."""

    def handler(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        if request.raw_path == "*" and request.method == "OPTIONS":
            return _server_wide_options()
        return app_handler(request)

    return handler


async def start_http(
    stack: AsyncExitStack,
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    shutdown_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Serve `app` on host:port until `stack` closes; the bound port. OSError if it cannot bind.
    With `ssl_context`, HTTPS only (taskgate/tls.py builds it)."""
    logging.getLogger("aiohttp.server").addFilter(_filter)
    runner = _JsonErrorRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        max_line_size=MAX_REQUEST_LINE_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        keepalive_timeout=IDLE_TIMEOUT_SECONDS,
        auto_decompress=False,
        handler_cancellation=True,  # T75: a client that leaves cancels its call
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(
        runner,
        host,
        port,
        ssl_context=ssl_context,
        reuse_address=True,
        reuse_port=reuse_port or None,
    )
    await site.start()
    return int(runner.addresses[-1][1])  # (host, port, ...) of the socket just bound
