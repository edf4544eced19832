"""The framework ceiling for gRPC: a grpc.aio server with one generic handler, no database.

Every unary method answers with canned bytes, without parsing the request:
  /api.TaskService/ListTasks  -> --list-response FILE (serialized ListTasksResponse), else a
                                 built-in 10-task response
  /api.TaskService/CreateTask -> --create-response FILE (serialized Task), else a built-in Task

    python bench/noop_grpc.py --port 19891 [--list-response F] [--create-response F]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc

from taskgate.api import task_pb2

LIST = "/api.TaskService/ListTasks"
CREATE = "/api.TaskService/CreateTask"


def default_responses() -> tuple[bytes, bytes]:
    tasks = []
    for i in range(1, 11):
        task = task_pb2.Task(
            id=f"00000000-0000-4000-8000-{i:012d}", namespace="ns1", pipelineName=f"p{i}",
            runId=f"r{i}", mlmdExecutionID=str(i), fingerprint=f"f{i}",
        )  # fmt: skip
        task.created_at.seconds = 1685577600 + i
        task.finished_at.seconds = 0
        tasks.append(task)
    listing = task_pb2.ListTasksResponse(tasks=tasks, next_page_token="x" * 120, total_size=20)
    return listing.SerializeToString(), tasks[6].SerializeToString()


class CannedHandler(grpc.GenericRpcHandler):
    def __init__(self, responses: dict[str, bytes]) -> None:
        self._handlers = {
            method: grpc.unary_unary_rpc_method_handler(self._answer(body))
            for method, body in responses.items()
        }

    @staticmethod
    def _answer(body: bytes):  # type: ignore[no-untyped-def]
        async def handler(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
            return body

        return handler

    def service(self, handler_call_details):  # type: ignore[no-untyped-def]
        return self._handlers.get(handler_call_details.method)


async def serve(port: int, responses: dict[str, bytes]) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((CannedHandler(responses),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=19891)
    parser.add_argument("--list-response", type=Path)
    parser.add_argument("--create-response", type=Path)
    args = parser.parse_args()
    list_body, create_body = default_responses()
    if args.list_response:
        list_body = args.list_response.read_bytes()
    if args.create_response:
        create_body = args.create_response.read_bytes()
    asyncio.run(serve(args.port, {LIST: list_body, CREATE: create_body}))


if __name__ == "__main__":
    main()
