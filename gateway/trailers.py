"""Response metadata as real HTTP/1.1 trailers: `Grpc-Trailer-<Key>` after a chunked body.

grpc-gateway announces the trailer fields in a `Trailer` header and lets Go's net/http write
them after the last chunk. aiohttp has no API for response trailers (aiohttp#1652), so this
module frames the body itself: `chunk` and `last_chunk` are the pure framing (RFC 9112 §7.1),
and `TrailerResponse` is the aiohttp glue, a `web.Response` whose body is written as one chunk
followed by the trailer section (docs/decisions.md T60).

When trailers are sent: always with `always=True` (the kfp preset, `always_send_trailers`),
otherwise when the request says `TE: trailers`; and only when there is at least one trailer,
so an answer without trailing metadata keeps its Content-Length. Trailers need HTTP/1.1 and a
body: to an HTTP/1.0 client, and on HEAD, 204 and 304, they are sent as headers instead, so
they are not lost (grpc-gateway's HEAD answers end up the same). The body is gzip-compressed by
the same rule as every other answer (T49, `encoding.compress_response`) before it is framed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11
from aiohttp.http_writer import StreamWriter

from taskgate.gateway.encoding import compress_response

TRAILER_HEADER = "Trailer"
#: Statuses whose answers have no body, so no chunks and nowhere for trailers.
_NO_BODY = frozenset({204, 304})

Fields = Sequence[tuple[str, str]]


def wants_trailers(te: str | None) -> bool:
    """Does this `TE` request header accept trailers? (The `trailers` token, any case.)"""
    if not te:
        return False
    return any(element.split(";")[0].strip().lower() == "trailers" for element in te.split(","))


def trailer_announcement(fields: Fields) -> str:
    """The `Trailer` header's value: each field name once, in order."""
    names: list[str] = []
    for name, _ in fields:
        if name.lower() not in (n.lower() for n in names):
            names.append(name)
    return ", ".join(names)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; nothing for no data (an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def last_chunk(fields: Fields) -> bytes:
    """The zero-size chunk, the trailer section and the blank line that end a chunked body."""
    section = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields)
    return b"0\r\n" + section + b"\r\n"


def chunked_with_trailers(body: bytes, fields: Fields) -> bytes:
    """The whole chunked body: `body` as one chunk, then the trailers."""
    return chunk(body) + last_chunk(fields)


class TrailerResponse(web.Response):
    """A complete response whose `trailers` go after the body, or in the headers when the
    client cannot take them (see the module docstring)."""

    def __init__(
        self,
        *,
        trailers: Iterable[tuple[str, str]],
        always: bool,
        body: bytes,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(status=status, body=body)
        for name, value in headers:
            self.headers.add(name, value)
        self.trailers: Fields = tuple(trailers)
        self._always = always
        #: the connection's writer once the body is to be framed here.
        self._writer: StreamWriter | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if not self.prepared and self.trailers and isinstance(request, web.Request):
            await self._compress(request)  # `may_compress` leaves subclasses alone
            await self._choose_framing(request)
        return await super().prepare(request)

    async def _choose_framing(self, request: web.Request) -> None:
        if not (self._always or wants_trailers(request.headers.get("TE"))):
            return
        writer = request.writer
        if (
            request.version < HttpVersion11
            or request.method == "HEAD"
            or self.status in _NO_BODY
            or not isinstance(writer, StreamWriter)
        ):
            for name, value in self.trailers:  # nowhere to put trailers: headers instead
                self.headers.add(name, value)
            return
        self.headers.popall("Content-Length", None)
        self.headers[TRAILER_HEADER] = trailer_announcement(self.trailers)
        self.enable_chunked_encoding()
        self._writer = writer

    async def _compress(self, request: web.Request) -> None:
        """T49 for this body: a plain Response runs through the function every other answer
        goes through (app.py `handle`, encoding.py `with_compression`)."""
        probe = web.Response(status=self.status, body=self.body, headers=self.headers)
        await compress_response(request, probe)
        self.body = probe.body
        for name in ("Vary", "Content-Encoding"):
            if name in probe.headers:
                self.headers[name] = probe.headers[name]

    async def write_eof(self, data: bytes = b"") -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            await super().write_eof(data)
            return
        body = self.body
        raw = bytes(body) if isinstance(body, (bytes, bytearray)) else b""
        # The headers say `Transfer-Encoding: chunked`; the bytes are framed here, so the writer
        # must pass them through as they are.
        writer.chunked = False
        await web.StreamResponse.write_eof(self, chunked_with_trailers(raw, self.trailers))
