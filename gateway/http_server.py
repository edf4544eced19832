"""Run a gateway app on a TCP port: the one place both commands start aiohttp.

Limits follow Go's net/http, which KFP's gateway runs on (1 MiB of request line and headers):
aiohttp's 8 KiB default would turn a long filter or page token into its own plain-text 400.
Malformed HTTP (the client's fault) is logged as one warning line, not an error traceback.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from aiohttp import http_exceptions, web

log = logging.getLogger(__name__)

MAX_REQUEST_LINE_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024


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
) -> int:
    """Serve `app` on host:port until `stack` closes; the bound port. OSError if it cannot bind."""
    logging.getLogger("aiohttp.server").addFilter(_filter)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        max_line_size=MAX_REQUEST_LINE_BYTES,
        max_field_size=MAX_HEADER_BYTES,
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port or None)
    await site.start()
    return int(runner.addresses[-1][1])  # (host, port, ...) of the socket just bound
