"""A test-only upstream for `taskgate gateway`: tgtest.Library and tgtest.Echo over grpc.aio.

Serves reflection (v1 and v1alpha, or less with --reflection) and health. Run it as
`python -m tests.upstream_server --port 0`; it prints `LISTENING <port>` once serving and
stops cleanly on SIGTERM. Every answer is built from the request, so tests can predict it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import any_pb2, empty_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from taskgate.server.reflection import enable_reflection
from tests.protos import transcoding_test_pb2 as pb
from tests.protos import transcoding_test_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
SERVICES = ("tgtest.Library", "tgtest.Echo")
#: Request metadata that is transport, not caller, and so is not echoed.
_NOT_ECHOED = ("grpc-", ":", "user-agent", "content-type", "te")
UNKNOWN_DETAIL_TYPE = "type.googleapis.com/nowhere.Unknown"


async def echo_metadata(context: Context) -> None:
    """Send the caller's metadata back as initial metadata, keys prefixed `x-echo-`."""
    received = context.invocation_metadata() or ()
    echoed = [(f"x-echo-{k}", v) for k, v in received if not k.startswith(_NOT_ECHOED)]
    await context.send_initial_metadata(echoed)


class EchoService(pb_grpc.EchoServicer):
    """Returns the request, so a test sees exactly what arrived."""

    async def Echo(self, request: pb.Scalars, context: Context) -> pb.Scalars:
        """With a label "trailer", also sends the trailer x-trailer with its value."""
        await echo_metadata(context)
        if "trailer" in request.labels:
            context.set_trailing_metadata((("x-trailer", request.labels["trailer"]),))
        return request

    async def EchoNested(self, request: pb.Scalars, context: Context) -> pb.Scalars:
        return await self.Echo(request, context)

    async def EchoAny(self, request: pb.Scalars, context: Context) -> pb.Scalars:
        return await self.Echo(request, context)


def book_named(name: str, *, with_labels: bool = False) -> pb.Book:
    book = pb.Book(name=name, title=f"title of {name}", page_count=len(name), color=pb.RED)
    if with_labels:
        book.labels["with"] = "labels"
    return book


class LibraryService(pb_grpc.LibraryServicer):
    """Deterministic answers built from the request fields."""

    async def GetBook(self, request: pb.GetBookRequest, context: Context) -> pb.Book:
        await echo_metadata(context)
        return book_named(request.name, with_labels=request.with_labels)

    async def GetBookTitle(self, request: pb.GetBookRequest, context: Context) -> pb.Book:
        return book_named(request.name, with_labels=request.with_labels)

    async def CreateBook(self, request: pb.CreateBookRequest, context: Context) -> pb.Book:
        book = pb.Book()
        book.CopyFrom(request.book)
        book.name = f"{request.parent}/books/{request.book_id or 'new'}"
        return book

    async def UpdateBook(self, request: pb.UpdateBookRequest, context: Context) -> pb.Book:
        book = pb.Book()
        book.CopyFrom(request.book)
        book.labels["update_mask"] = ",".join(request.update_mask.paths)
        return book

    async def DeleteBook(self, request: pb.DeleteBookRequest, context: Context) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async def ListBooks(
        self, request: pb.ListBooksRequest, context: Context
    ) -> pb.ListBooksResponse:
        parent = request.parent or "shelves/all"
        books = [book_named(f"{parent}/books/{i}") for i in range(request.page_size or 2)]
        for book in books:
            book.labels["filter"] = request.filter
        more = "" if request.page_token else "next"
        return pb.ListBooksResponse(books=books, next_page_token=more, total_size=len(books) * 2)

    async def MoveBook(self, request: pb.MoveBookRequest, context: Context) -> pb.Book:
        return book_named(f"{request.other_shelf_name}/books/{request.name.rsplit('/', 1)[-1]}")

    async def ReadFile(self, request: pb.ReadFileRequest, context: Context) -> Any:
        data = f"contents of {request.path}".encode()
        return httpbody_pb2.HttpBody(content_type=request.content_type or "text/plain", data=data)

    async def Upload(self, request: pb.UploadRequest, context: Context) -> pb.Book:
        body = request.body
        return pb.Book(name=request.name, title=f"{len(body.data)} bytes of {body.content_type}")

    async def StreamBooks(
        self, request: pb.StreamBooksRequest, context: Context
    ) -> AsyncIterator[pb.Book]:
        """`count` books; with a fail_code, fail after min(count, fail_after) of them."""
        await echo_metadata(context)
        sent = min(request.count, request.fail_after) if request.fail_code else request.count
        for i in range(sent):
            if i and request.interval_ms:
                await asyncio.sleep(request.interval_ms / 1000)
            yield book_named(f"{request.shelf}/books/{i}")
        if request.fail_code:
            if not sent:
                # Let the header metadata leave first: sent together with the status, it would
                # be a trailers-only answer, where gRPC folds header metadata into the trailers.
                await asyncio.sleep(0.05)
            await context.abort(grpc_code(request.fail_code), f"failed after {sent} books")

    async def StreamFile(self, request: pb.ReadFileRequest, context: Context) -> AsyncIterator[Any]:
        content_type = request.content_type or "text/plain"
        for i in range(3):
            yield httpbody_pb2.HttpBody(
                content_type=content_type, data=f"chunk {i} of {request.path}\n".encode()
            )

    async def Fail(  # noqa: RET503 (abort_with_status never returns)
        self, request: pb.FailRequest, context: Context
    ) -> empty_pb2.Empty:
        if request.delay_ms:
            try:
                await asyncio.sleep(request.delay_ms / 1000)
            except asyncio.CancelledError:
                log.info("Fail call cancelled by the client")
                raise
        if request.with_metadata:
            await echo_metadata(context)
            await asyncio.sleep(0.05)  # not a trailers-only answer (see StreamBooks)
        if request.code == 0:
            return empty_pb2.Empty()
        status = status_pb2.Status(code=request.code, message=request.message)
        status.details.extend(failure_details(request))
        grpc_status = rpc_status.to_status(status)
        if request.with_metadata:
            trailers = (*grpc_status.trailing_metadata, ("x-failed", "yes"))
            await context.abort(grpc_status.code, grpc_status.details, trailers)
        await context.abort_with_status(grpc_status)

    async def Unannotated(self, request: pb.Scalars, context: Context) -> pb.Scalars:
        return request

    async def ImportBooks(
        self, request_iterator: AsyncIterator[pb.CreateBookRequest], context: Context
    ) -> pb.ListBooksResponse:
        """Every book sent, numbered in order; a book titled "fail" fails the call. Echoes the
        metadata, and sends the trailer x-imported with the count."""
        await echo_metadata(context)
        books: list[pb.Book] = []
        async for request in request_iterator:
            if request.book.title == "fail":
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"book {len(books)} cannot be imported"
                )
            book = pb.Book()
            book.CopyFrom(request.book)
            book.name = f"shelves/import/books/{len(books)}"
            books.append(book)
        context.set_trailing_metadata((("x-imported", str(len(books))),))
        return pb.ListBooksResponse(books=books, total_size=len(books))

    async def ChatBooks(
        self, request_iterator: AsyncIterator[pb.CreateBookRequest], context: Context
    ) -> AsyncIterator[pb.Book]:
        """One book back per request, at once; a book_id of "fail" fails the call."""
        await echo_metadata(context)
        async for request in request_iterator:
            if request.book_id == "fail":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "chat failed on request")
            book = pb.Book()
            book.CopyFrom(request.book)
            book.name = f"{request.parent}/books/{request.book_id}"
            yield book

    async def UploadStream(
        self, request_iterator: AsyncIterator[pb.UploadRequest], context: Context
    ) -> pb.Book:
        size = sum([len(request.body.data) async for request in request_iterator])
        return pb.Book(title=f"{size} bytes")


def failure_details(request: pb.FailRequest) -> list[any_pb2.Any]:
    details: list[any_pb2.Any] = []
    if request.with_details:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="name", description="must not be empty"
        )
        info = error_details_pb2.ErrorInfo(reason="FAIL", domain="tgtest", metadata={"k": "v"})
        for message in (error_details_pb2.BadRequest(field_violations=[violation]), info):
            packed = any_pb2.Any()
            packed.Pack(message)
            details.append(packed)
    if request.unknown_detail:
        details.append(any_pb2.Any(type_url=UNKNOWN_DETAIL_TYPE, value=b"\x08\x2a"))
    return details


def grpc_code(number: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == number), grpc.StatusCode.UNKNOWN)


async def start_server(
    port: int, *, reflection_versions: Sequence[str] = ("v1", "v1alpha")
) -> tuple[grpc.aio.Server, int]:
    """Build and start the server on 127.0.0.1:port (0: any free port); returns it and its port."""
    server = grpc.aio.server()
    pb_grpc.add_LibraryServicer_to_server(LibraryService(), server)
    pb_grpc.add_EchoServicer_to_server(EchoService(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, SERVICES, reflection_versions)  # taskgate serve's own
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    for name in ("", *SERVICES, health.SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


async def serve(port: int, reflection_versions: Sequence[str]) -> None:
    server, bound = await start_server(port, reflection_versions=reflection_versions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(f"LISTENING {bound}\n")
    sys.stdout.flush()
    await stop.wait()
    await server.stop(grace=1.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.upstream_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--reflection",
        choices=["both", "v1", "v1alpha", "none"],
        default="both",
        help="which server reflection versions to serve",
    )
    args = parser.parse_args(argv)
    versions = {"both": ("v1", "v1alpha"), "none": ()}.get(args.reflection, (args.reflection,))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve(args.port, versions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
