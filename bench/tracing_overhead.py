"""What tracing costs one call (docs/decisions.md P13): a call through the pipeline, as a door
makes it, with and without the tracing code paths, no database.

Each door does, per call: extract the caller's context, start the SERVER span and make it
current, run the pipeline (whose handler here wraps a no-op in `database_span`, as the store
does around a statement), end the span. Without an SDK the API's no-op tracer answers; `--sdk`
adds the SDK's provider with an in-memory exporter, for comparison.

    python bench/tracing_overhead.py [--calls 50000] [--rounds 5] [--sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from google.protobuf.message import Message

from taskgate import tracing
from taskgate.api import task_pb2
from taskgate.rpc import CallOptions
from taskgate.server.pipeline import CallPipeline, Method

LIST = "/api.TaskService/ListTasks"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def handler(request: Message, options: CallOptions) -> Message:
    with tracing.database_span("SELECT", "tasks"):
        return task_pb2.ListTasksResponse()


async def handler_untraced(request: Message, options: CallOptions) -> Message:
    return task_pb2.ListTasksResponse()


def pipeline(traced: bool) -> CallPipeline:
    method = Method(
        handler if traced else handler_untraced,
        task_pb2.ListTasksRequest,
        task_pb2.ListTasksResponse,
    )
    return CallPipeline({LIST: method})


async def calls_untraced(n: int, metadata: tuple[tuple[str, str], ...]) -> float:
    calls = pipeline(traced=False)
    request, options = task_pb2.ListTasksRequest(), CallOptions(metadata=metadata)
    started = time.perf_counter()
    for _ in range(n):
        await calls.call(LIST, request, options)
    return time.perf_counter() - started


async def calls_traced(n: int, metadata: tuple[tuple[str, str], ...]) -> float:
    calls = pipeline(traced=True)
    request, options = task_pb2.ListTasksRequest(), CallOptions(metadata=metadata)
    started = time.perf_counter()
    for _ in range(n):
        span = tracing.start_server_span(LIST[1:], tracing.context_from_metadata(metadata))
        try:
            await calls.call(LIST, request, options)
        finally:
            span.end(LIST, "OK")
    return time.perf_counter() - started


async def main(calls: int, rounds: int) -> None:
    for label, metadata in (
        ("no traceparent", (("x-request-id", "r"),)),
        ("with traceparent", (("x-request-id", "r"), ("traceparent", TRACEPARENT))),
    ):
        base, traced = [], []
        for _ in range(rounds):
            base.append(await calls_untraced(calls, metadata) / calls * 1e6)
            traced.append(await calls_traced(calls, metadata) / calls * 1e6)
        b, t = min(base), min(traced)
        print(f"{label}: untraced {b:.2f} µs/call, traced {t:.2f} µs/call, +{t - b:.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sdk", action="store_true", help="with the SDK, in-memory exporter")
    args = parser.parse_args()
    if args.sdk:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        tracing.TRACER = provider.get_tracer("taskgate")
    asyncio.run(main(args.calls, args.rounds))
