"""Property: no combination of filter predicates shows a task outside the caller's readable
namespaces (hypothesis, against `taskgate serve --authz-policy` on the real database).

The server runs on its own event loop in a thread, so that hypothesis (synchronous) can drive a
blocking gRPC client.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.server.lifecycle import serving
from taskgate.server.settings import ServeSettings
from taskgate.store.records import NewTask
from taskgate.store.task_store import TaskStore
from tests.integration.authz.conftest import POLICY, TOKENS
from tests.integration.servers import serve_settings

NAMESPACES = ["alice", "bob", "", "carol"]
#: bob reads bob, and the shared namespace (shared: read).
READABLE = {"bob", ""}
STRING_KEYS = ["namespace", "pipelineName", "runId", "fingerprint", "id"]
STRING_VALUES = [*NAMESPACES, "p1", "p2", "r1", "fp", "ali", "b"]
OPS = ["EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN_EQUALS", "IS_SUBSTRING", "IN"]


@st.composite
def predicate(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        key = draw(st.sampled_from(["created_at", "finished_at"]))
        op = draw(st.sampled_from(["EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN"]))
        return {"key": key, "op": op, "longValue": str(draw(st.integers(0, 4)))}
    key, op = draw(st.sampled_from(STRING_KEYS)), draw(st.sampled_from(OPS))
    if op == "IN":
        values = draw(st.lists(st.sampled_from(STRING_VALUES), max_size=3))
        return {"key": key, "op": op, "stringValues": {"values": values}}
    return {"key": key, "op": op, "stringValue": draw(st.sampled_from(STRING_VALUES))}


@contextmanager
def server_thread(serve: ServeSettings) -> Iterator[int]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        async with serving(serve) as running:
            port.append(running.grpc_port)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert ready.wait(30)
        yield port[0]
    finally:
        if stop:
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        loop.close()


async def seed(database_url: str) -> None:
    connection_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await connection_pool.execute("TRUNCATE tasks")
        store = TaskStore(connection_pool)
        for i, namespace in enumerate(NAMESPACES * 3):
            pipeline, run = f"p{i % 2 + 1}", f"r{i % 3}"
            await store.create_task(NewTask(namespace, pipeline, run, "1", i % 5, i % 4, "fp"))
    finally:
        await connection_pool.close()


def test_no_filter_shows_an_unreadable_namespace(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "tokens.txt").write_text(TOKENS)
    (tmp_path / "policy.yaml").write_text(POLICY)
    asyncio.run(seed(database_url))
    serve = replace(serve_settings(database_url), authz_policy=tmp_path / "policy.yaml")
    with server_thread(serve) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = task_pb2_grpc.TaskServiceStub(channel)
        metadata = (("kubeflow-userid", "accounts.google.com:bob"),)

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(predicate(), max_size=4), st.sampled_from(["", "namespace", "id desc"]))
        def check(predicates: list[dict[str, Any]], sort_by: str) -> None:
            request = task_pb2.ListTasksRequest(
                filter=json.dumps({"predicates": predicates}), sort_by=sort_by, page_size=3
            )
            seen: list[str] = []
            total = None
            while True:
                try:
                    page = stub.ListTasks(request, metadata=metadata)
                except grpc.RpcError as error:
                    code = error.code()
                    assert code in (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.PERMISSION_DENIED,
                    )
                    if code == grpc.StatusCode.PERMISSION_DENIED:
                        assert any(
                            p["key"] == "namespace" and p["op"] in ("EQUALS", "IN")
                            for p in predicates
                        )
                    return
                seen += [task.namespace for task in page.tasks]
                total = page.total_size
                if not page.next_page_token:
                    break
                request = task_pb2.ListTasksRequest(page_token=page.next_page_token, page_size=3)
            assert set(seen) <= READABLE
            assert total == len(seen)  # total_size counts only what the caller may see

        check()
