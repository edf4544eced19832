"""The gateway's channel asks its upstream for uncompressed messages (docs/decisions.md T90).

An upstream configured to compress for clients that accept it (`taskgate serve` is, P12) must
send the gateway its responses as they are: the bytes that cross a counting TCP relay between
the two show whether the response was compressed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from taskgate.gateway.upstream import GrpcInvoker, open_upstream_channel
from taskgate.rpc import CallOptions
from tests.protos import transcoding_test_pb2 as pb

pytestmark = pytest.mark.integration

#: Compresses to a few hundred bytes with gzip or deflate.
COMPRESSIBLE = "a" * 100_000


async def _echo(
    request: pb.Scalars, context: grpc.aio.ServicerContext[pb.Scalars, pb.Scalars]
) -> pb.Scalars:
    return request


@asynccontextmanager
async def compressing_upstream() -> AsyncIterator[int]:
    """An Echo server that compresses for every client that accepts it, as `serve` does."""
    server = grpc.aio.server(options=[("grpc.default_compression_level", 2)])
    handler = grpc.unary_unary_rpc_method_handler(
        _echo,
        request_deserializer=pb.Scalars.FromString,
        response_serializer=pb.Scalars.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("tgtest.Echo", {"Echo": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


class CountingRelay:
    """A TCP relay to `port` that counts the bytes the upstream sends back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.downstream_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if count:
                    self.downstream_bytes += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        for task in (
            asyncio.create_task(self._pipe(client_r, server_w, count=False)),
            asyncio.create_task(self._pipe(server_r, client_w, count=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[str]:
        relay = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield f"127.0.0.1:{relay.sockets[0].getsockname()[1]}"
        finally:
            relay.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await relay.wait_closed()


async def test_the_upstream_sends_responses_uncompressed() -> None:
    async with compressing_upstream() as port:
        relay = CountingRelay(port)
        async with relay.listening() as target, open_upstream_channel(target) as channel:
            invoker = GrpcInvoker(channel, upstream=target)
            request = pb.Scalars(display_name=COMPRESSIBLE)

            result = await invoker.unary("/tgtest.Echo/Echo", request, CallOptions(timeout=10))

    assert result.response == request
    assert relay.downstream_bytes > len(COMPRESSIBLE)  # compressed, it would be < 1,000
