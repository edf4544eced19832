"""The framework ceiling for REST: an aiohttp app answering from memory, no gRPC, no database.

GET  /apis/v1alpha1/tasks  -> a canned ListTasks JSON body (--list-body FILE, else ~2.4 KB built in)
POST /apis/v1alpha1/tasks  -> reads the request body, returns a canned Task (--create-body FILE)

    python bench/noop_aiohttp.py --port 19890 [--list-body F] [--create-body F]

One process, one event loop, access log off: the same aiohttp setup taskgate serve uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web


def _task(i: int) -> dict[str, str]:
    return {
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "namespace": "ns1",
        "pipelineName": f"p{i}",
        "runId": f"r{i}",
        "mlmdExecutionID": str(i),
        "created_at": f"2023-06-01T00:00:{i:02d}Z",
        "finished_at": "1970-01-01T00:00:00Z",
        "fingerprint": f"f{i}",
    }


def default_bodies() -> tuple[bytes, bytes]:
    listing = {"tasks": [_task(i) for i in range(1, 11)], "next_page_token": "x" * 120,
               "total_size": 20}  # fmt: skip
    return json.dumps(listing, separators=(",", ":")).encode(), json.dumps(_task(7)).encode()


def make_app(list_body: bytes, create_body: bytes) -> web.Application:
    async def list_tasks(_request: web.Request) -> web.Response:
        return web.Response(body=list_body, content_type="application/json")

    async def create_task(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=create_body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/apis/v1alpha1/tasks", list_tasks)
    app.router.add_post("/apis/v1alpha1/tasks", create_task)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=19890)
    parser.add_argument("--list-body", type=Path)
    parser.add_argument("--create-body", type=Path)
    args = parser.parse_args()
    list_body, create_body = default_bodies()
    if args.list_body:
        list_body = args.list_body.read_bytes()
    if args.create_body:
        create_body = args.create_body.read_bytes()
    web.run_app(
        make_app(list_body, create_body), host="127.0.0.1", port=args.port, access_log=None,
        print=None,
    )  # fmt: skip


if __name__ == "__main__":
    main()
