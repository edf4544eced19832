"""Run a gateway app on a TCP port: the one place both commands start aiohttp.

Limits follow Go's net/http, which KFP's gateway runs on (1 MiB of request line and headers):
aiohttp's 8 KiB default would turn a long filter or page token into its own plain-text 400.
Malformed HTTP (the client's fault) is logged as one warning line, not an error traceback.

Bounded (docs/decisions.md P2): a connection must send a complete request head within
IDLE_TIMEOUT_SECONDS of opening or of its previous response, or it is closed; so are idle
keep-alive connections (aiohttp's keep-alive timer covers both, since it runs from the moment a
connection opens until a whole head has arrived). aiohttp's own body decompression is off: it
inflates a whole body before any size check, so app.py inflates bodies itself, bounded (body.py),
and also bounds the time a body may take to arrive.
"""

from __future__ import annotations

import logging
import ssl
from contextlib import AsyncExitStack

from aiohttp import http_exceptions, web

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
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        max_line_size=MAX_REQUEST_LINE_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        keepalive_timeout=IDLE_TIMEOUT_SECONDS,
        auto_decompress=False,
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
