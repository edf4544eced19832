"""gzip responses on the REST door (docs/decisions.md T49), both commands.

`accepts_gzip` and `vary_with` are the pure part (Accept-Encoding negotiation, RFC 9110
§12.5.3); `compress_response` applies them to one response. The catch-all handler (app.py) calls
it itself, and `with_compression` wraps the app's other handlers, rather than a middleware: a
middleware costs every request two more coroutine frames (docs/decisions.md P40).

A response is compressed when all hold: it is a complete `web.Response` with a bytes body of at
least `MIN_BYTES` (so not a stream, which streaming.py has already sent and flushes per message),
it carries no `Content-Encoding` of its own (an HttpBody that says it is already compressed), its
status has a body, and the request's Accept-Encoding allows gzip. Every response that could be
compressed says `Vary: Accept-Encoding`, compressed or not. A body that does not shrink is sent
as is. Bodies over `EXECUTOR_BYTES` are compressed in a thread of its own (signals blocked), so
the event loop never waits on zlib for more than about 2 ms (incompressible 64 KiB; JSON 0.4 ms).
"""

from __future__ import annotations

import asyncio
import signal
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

#: Smaller responses are sent as they are: gzip's 18 bytes of framing and the CPU buy nothing.
MIN_BYTES = 1024
#: Larger bodies are compressed in the default thread pool, not on the event loop.
EXECUTOR_BYTES = 64 * 1024
#: zlib's default level; 1 is 2-3 times faster and makes JSON about 30 % larger.
LEVEL = 6
GZIP = "gzip"
_CODINGS_OF_GZIP = frozenset({"gzip", "x-gzip"})
#: Statuses that never carry a body.
_NO_BODY = frozenset({204, 304})


def _quality(params: list[str]) -> float | None:
    """The q parameter of one Accept-Encoding element (1 when absent); None when malformed."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0.0 <= q <= 1.0 else None
    return 1.0


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does this Accept-Encoding allow gzip? gzip (or x-gzip) named with q > 0, or, when
    neither is named, `*` with q > 0. An absent or empty header allows identity only, as does a
    malformed element (ignored)."""
    if not accept_encoding:
        return False
    named: float | None = None
    star: float | None = None
    for element in accept_encoding.split(","):
        coding, *params = element.split(";")
        coding = coding.strip().lower()
        q = _quality(params)
        if q is None:
            continue
        if coding in _CODINGS_OF_GZIP:
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q if star is None else max(star, q)
    if named is not None:
        return named > 0
    return star is not None and star > 0


def vary_with(existing: str | None, token: str) -> str:
    """`existing` Vary value with `token` added once (case-insensitive); `*` stays `*`."""
    if not existing:  # most responses: nothing to merge with
        return token
    tokens = [t.strip() for t in existing.split(",") if t.strip()]
    if "*" in tokens or token.lower() in (t.lower() for t in tokens):
        return ", ".join(tokens)
    return ", ".join((*tokens, token))


def _block_signals() -> None:
    """Compression threads never take a process signal (SIGHUP, SIGTERM): the main thread
    does, even while it blocks one for a moment (server/workers.py)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())


#: Its own small pool, started on first use: zlib releases the GIL, so two threads suffice.
_EXECUTOR = ThreadPoolExecutor(
    max_workers=2, thread_name_prefix="taskgate-gzip", initializer=_block_signals
)


def gzip_bytes(body: bytes) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def _compressible(response: web.StreamResponse) -> tuple[web.Response, bytes] | None:
    """The response and the body to compress, if this response may be compressed at all."""
    if not isinstance(response, web.Response) or type(response) is not web.Response:
        return None
    if response.prepared:
        return None
    body = response.body
    if not isinstance(body, (bytes, bytearray)) or len(body) < MIN_BYTES:
        return None
    if response.status in _NO_BODY or "Content-Encoding" in response.headers:
        return None
    return response, bytes(body)


async def compress_response(request: web.Request, response: web.StreamResponse) -> None:
    """gzip `response` in place when the rules above allow it."""
    found = _compressible(response)
    if found is None:
        return
    response, body = found
    response.headers["Vary"] = vary_with(response.headers.get("Vary"), "Accept-Encoding")
    if not accepts_gzip(request.headers.get("Accept-Encoding")):
        return
    if len(body) > EXECUTOR_BYTES:
        compressed = await asyncio.get_running_loop().run_in_executor(_EXECUTOR, gzip_bytes, body)
    else:
        compressed = gzip_bytes(body)
    if len(compressed) >= len(body):
        return
    response.body = compressed
    response.headers.popall("Content-Length", None)
    response.headers["Content-Encoding"] = GZIP


def may_compress(response: web.StreamResponse) -> bool:
    """Could `compress_response` change this response at all? (Cheap: most answers are small.)"""
    return _compressible(response) is not None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def with_compression(handler: Handler) -> Handler:
    """`handler`, with each eligible response gzipped."""

    async def compressed(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if may_compress(response):
            await compress_response(request, response)
        return response

    return compressed
