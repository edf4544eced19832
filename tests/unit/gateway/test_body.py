"""`read_body` on aiohttp's own StreamReader: a body already buffered is taken at once, one that
is still arriving is read within the deadline, and the limits hold either way."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp import streams

from taskgate.gateway.body import read_body
from taskgate.gateway.errors import TranscodeError

BODY = b'{"task": {"pipelineName": "p"}}'


class _Protocol:
    """What StreamReader asks of aiohttp's protocol."""

    connected = True

    def pause_reading(self, **kwargs: object) -> None:
        pass

    def resume_reading(self, **kwargs: object) -> None:
        pass


def stream(*chunks: bytes, eof: bool = True) -> streams.StreamReader:
    reader = streams.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def read(reader: streams.StreamReader, *, coding: str = "", limit: int = 100) -> bytes:
    return await read_body(
        reader, content_encoding=coding, content_length=None, limit=limit, seconds=0.2
    )


async def test_a_buffered_body_is_taken_at_once() -> None:
    assert await read(stream(BODY[:5], BODY[5:])) == BODY
    assert await read(stream()) == b""


async def test_a_body_still_arriving_is_read_to_its_end() -> None:
    reader = stream(BODY[:5], eof=False)
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, reader.feed_data, BODY[5:])
    loop.call_later(0.04, reader.feed_eof)

    assert await read(reader) == BODY


@pytest.mark.parametrize("eof", [True, False])
async def test_too_large_either_way(eof: bool) -> None:
    with pytest.raises(TranscodeError) as caught:
        await read(stream(b"x" * 101, eof=eof))

    assert caught.value.http_status == 413


async def test_a_body_that_stops_arriving_is_408() -> None:
    with pytest.raises(TranscodeError) as caught:
        await read(stream(BODY[:5], eof=False))

    assert caught.value.http_status == 408


async def test_a_compressed_body_is_inflated() -> None:
    assert await read(stream(gzip.compress(BODY)), coding="gzip") == BODY
