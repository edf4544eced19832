"""Read a request body within bounds: size after decompression, time to arrive.

aiohttp's own decompression runs over the whole body before any size check, so the HTTP
server turns it off (http_server.py) and bodies are inflated here instead, chunk by chunk,
never producing more than `limit` + 1 bytes (docs/decisions.md P2, T47): a 1 MB gzip bomb that
would inflate to 1 GiB costs a few milliseconds and one 413. Content codings: gzip (x-gzip),
deflate (zlib), identity; any other is 415.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Protocol

import grpc

from taskgate.gateway.errors import TranscodeError

#: How much of the raw body is read at a time.
CHUNK_BYTES = 64 * 1024
#: zlib window bits by content coding: gzip framing, or zlib framing for "deflate".
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
UNSUPPORTED_MEDIA_TYPE = 415
PAYLOAD_TOO_LARGE = 413
REQUEST_TIMEOUT = 408


class BodyStream(Protocol):
    """What is read of aiohttp's `request.content`."""

    async def readany(self) -> bytes: ...


class BufferedBody(BodyStream, Protocol):
    """What `read_body` reads of aiohttp's `request.content`: also what has arrived already."""

    def read_nowait(self, n: int = -1) -> bytes: ...

    def at_eof(self) -> bool: ...


def too_large(limit: int) -> TranscodeError:
    return TranscodeError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the request body is larger than {limit} bytes",
        http_status=PAYLOAD_TOO_LARGE,
    )


def coding_of(content_encoding: str) -> str | None:
    """The one content coding to undo (None: identity); 415 for any other, or for several."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _WBITS:
        shown = ", ".join(codings)[:64]
        raise TranscodeError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f'unsupported Content-Encoding "{shown}": use gzip, deflate or identity',
            http_status=UNSUPPORTED_MEDIA_TYPE,
        )
    return codings[0]


class Inflater:
    """Decompresses one body incrementally, refusing to produce more than `limit` bytes."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._wbits = _WBITS[coding]
        self._limit = limit
        self._decompressor = zlib.decompressobj(self._wbits)
        self._out = bytearray()
        self._fed = False

    def feed(self, data: bytes) -> None:
        self._fed = self._fed or bool(data)
        while data:
            if self._decompressor.eof:
                if self._coding == "deflate":
                    raise self._invalid()  # bytes after the end of the stream
                self._decompressor = zlib.decompressobj(self._wbits)  # the next gzip member
            room = self._limit - len(self._out) + 1
            try:
                piece = self._decompressor.decompress(data, room)
            except zlib.error:
                raise self._invalid() from None
            self._out += piece
            if len(self._out) > self._limit:
                raise too_large(self._limit)
            rest = self._decompressor.unconsumed_tail or self._decompressor.unused_data
            if not piece and rest == data:
                raise self._invalid()  # no progress: never loop forever
            data = rest

    def finish(self) -> bytes:
        if self._fed and not self._decompressor.eof:
            raise self._invalid()  # truncated
        return bytes(self._out)

    def _invalid(self) -> TranscodeError:
        return TranscodeError.invalid(f"the request body is not valid {self._coding} data")


async def read_body(
    stream: BufferedBody,
    *,
    content_encoding: str,
    content_length: int | None,
    limit: int,
    seconds: float,
) -> bytes:
    """The whole body, decompressed: 413 past `limit` bytes (before or after decompression),
    408 if it has not all arrived within `seconds`, 415/400 for bad codings."""
    coding = coding_of(content_encoding)
    # Compressed data can be a little larger than what it holds (incompressible input).
    raw_limit = limit if coding is None else limit + limit // 64 + 1024
    if content_length is not None and content_length > raw_limit:
        raise too_large(limit)
    inflater = None if coding is None else Inflater(coding, limit)
    raw = bytearray()
    received = 0
    if inflater is None:
        # A small body usually arrives with the headers: all of it is here, no timer needed.
        early = stream.read_nowait()
        if len(early) > raw_limit:
            raise too_large(limit)
        if stream.at_eof():
            return early
        raw += early
        received = len(early)
    try:
        async with asyncio.timeout(seconds):
            while chunk := await stream.readany():
                received += len(chunk)
                if received > raw_limit:
                    raise too_large(limit)
                if inflater is None:
                    raw += chunk
                else:
                    inflater.feed(chunk)
    except TimeoutError:
        raise TranscodeError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request body did not arrive within {seconds:g} seconds",
            http_status=REQUEST_TIMEOUT,
        ) from None
    return bytes(raw) if inflater is None else inflater.finish()
