"""`kill -9` of `taskgate serve` under write load, then a restart on the same data directory:
every acknowledged task is there exactly once, and the embedded PostgreSQL the crash left
running (an orphan) is restarted by the new process, which then stops it on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import grpc

from taskgate.api import task_pb2, task_pb2_grpc
from taskgate.store.embedded_os import wait_for_exit
from tests.integration.conftest import private_temp_dir
from tests.integration.faults.processes import is_alive, postmaster_pid
from tests.integration.faults.serve_process import start_serve, terminate, wait_ready
from tests.integration.kfp import new_task
from tests.upstream_process import free_port

WRITERS = 4
WRITES_PER_WRITER = 5_000  # a bound; the kill comes first
LOAD_SECONDS = 1.5


def write_until_failure(target: str, writer: int, acknowledged: list[str]) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = task_pb2_grpc.TaskServiceStub(channel)
        deadline = time.monotonic() + 20
        for n in range(WRITES_PER_WRITER):
            if time.monotonic() > deadline:
                return
            try:
                task = stub.CreateTask(
                    task_pb2.CreateTaskRequest(task=new_task(fingerprint=f"w{writer}-{n}")),
                    timeout=5,
                )
            except grpc.RpcError:
                return  # the server is gone: no acknowledgement, so no promise
            acknowledged.append(task.id)


def all_task_ids(target: str) -> list[str]:
    ids: list[str] = []
    with grpc.insecure_channel(target) as channel:
        stub = task_pb2_grpc.TaskServiceStub(channel)
        token = ""
        for _ in range(1_000):
            page = stub.ListTasks(
                task_pb2.ListTasksRequest(page_size=200, page_token=token), timeout=10
            )
            ids.extend(task.id for task in page.tasks)
            token = page.next_page_token
            if not token:
                return ids
    raise AssertionError("too many pages")


def test_kill_9_under_write_load_then_restart() -> None:
    with private_temp_dir("taskgate-kill9-") as home:
        data_dir = home / "data"
        pgdata = data_dir / "pgdata"
        grpc_port, http_port = free_port(), free_port()
        target = f"127.0.0.1:{grpc_port}"
        orphan: int | None = None
        second_postmaster: int | None = None
        left_running: list[int] = []
        try:
            first = start_serve(data_dir, grpc_port, http_port, home / "first.log")
            try:
                wait_ready(http_port, first)
                acknowledged: list[str] = []
                writers = [
                    threading.Thread(target=write_until_failure, args=(target, i, acknowledged))
                    for i in range(WRITERS)
                ]
                for thread in writers:
                    thread.start()
                time.sleep(LOAD_SECONDS)
                os.kill(first.pid, signal.SIGKILL)  # mid-write
                for thread in writers:
                    thread.join(30)
            finally:
                if first.poll() is None:
                    first.kill()
                first.wait(10)
            assert not any(thread.is_alive() for thread in writers)
            assert len(acknowledged) > 20, "too little load to mean anything"

            orphan = postmaster_pid(pgdata)
            assert is_alive(orphan), "the crash should have left the postmaster running"

            second = start_serve(data_dir, grpc_port, http_port, home / "second.log")
            try:
                wait_ready(http_port, second)
                second_postmaster = postmaster_pid(pgdata)
                stored = all_task_ids(target)
            finally:
                code = terminate(second)
            log = (home / "second.log").read_text()
            assert code == 0, log
        finally:
            left_running = [p for p in (orphan, second_postmaster) if p is not None and is_alive(p)]
            for pid in left_running:  # leave nothing running, whatever happened
                os.kill(pid, signal.SIGINT)
                wait_for_exit(pid, 30)

        counts = Counter(stored)
        assert [i for i in acknowledged if counts[i] != 1] == []
        assert len(counts) == len(stored)
        assert second_postmaster is not None
        assert left_running == [], "an embedded PostgreSQL was left running"
        assert second_postmaster != orphan, "the orphan was adopted, not restarted"
        assert "left running by a taskgate process that is gone; restarting it" in log
        assert "embedded PostgreSQL stopped" in log
        assert "Traceback" not in log
