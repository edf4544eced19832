"""The real `taskgate serve` process (python -m server): configuration from TASKGATE_*
variables, the embedded PostgreSQL, readiness, a clean exit 0 on SIGTERM, data kept across
restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskgate.api import task_pb2, task_pb2_grpc
from tests.integration.conftest import private_temp_dir
from tests.integration.kfp import new_task
from tests.upstream_process import free_port

READY_TIMEOUT = 60.0


def start_serve(
    data_dir: Path, grpc_port: int, http_port: int, *flags: str
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TASKGATE_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "TASKGATE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "TASKGATE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TASKGATE_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "server", *flags],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(http_port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "taskgate serve exited before it was ready"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("taskgate serve did not become ready")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    finally:
        output = process.stdout.read() if process.stdout else ""
        if process.stdout:
            process.stdout.close()
    return code, output


def test_serve_runs_embedded_keeps_data_and_stops_cleanly() -> None:
    with private_temp_dir("taskgate-serve-") as home:
        data_dir = home / "data"
        grpc_port, http_port = free_port(), free_port()
        process = start_serve(data_dir, grpc_port, http_port)
        try:
            wait_ready(http_port, process)
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                created = task_pb2_grpc.TaskServiceStub(channel).CreateTask(
                    task_pb2.CreateTaskRequest(task=new_task())
                )
        finally:
            code, output = stop(process)
        assert code == 0, output
        assert "taskgate ready" in output
        assert "embedded PostgreSQL stopped" in output
        assert "Traceback" not in output

        process = start_serve(data_dir, grpc_port, http_port)
        try:
            wait_ready(http_port, process)
            url = f"http://127.0.0.1:{http_port}/apis/v1alpha1/tasks"
            with urllib.request.urlopen(url, timeout=10) as response:
                listed = json.loads(response.read())
        finally:
            code, output = stop(process)
        assert code == 0, output
        assert [task["id"] for task in listed["tasks"]] == [created.id]


def test_serve_reports_a_port_in_use() -> None:
    with private_temp_dir("taskgate-busy-") as home:
        grpc_port = free_port()
        import socket

        with socket.socket() as holder:
            holder.bind(("127.0.0.1", grpc_port))
            holder.listen()
            process = start_serve(home / "data", grpc_port, free_port())
            code = process.wait(timeout=60)
            output = process.stdout.read() if process.stdout else ""
            if process.stdout:
                process.stdout.close()
        assert code == 1
        assert f"cannot listen for gRPC on 127.0.0.1:{grpc_port}" in output
        assert "Traceback" not in output


def test_workers_share_the_ports_and_each_others_tokens() -> None:
    with private_temp_dir("taskgate-workers-") as home:
        grpc_port, http_port = free_port(), free_port()
        process = start_serve(home / "data", grpc_port, http_port, "--workers", "2")
        url = f"http://127.0.0.1:{http_port}/apis/v1alpha1/tasks"
        try:
            wait_ready(http_port, process)
            time.sleep(1.0)  # the second worker may still be starting
            body = json.dumps(
                {
                    "pipelineName": "p",
                    "runId": "r",
                    "mlmdExecutionID": "1",
                    "fingerprint": "f",
                    "created_at": "2024-01-01T00:00:00Z",
                }
            )
            for _ in range(6):
                request = urllib.request.Request(
                    url,
                    data=body.encode(),
                    method="POST",
                    headers={"Content-Type": "application/json"},  # D16
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            seen: list[str] = []
            token = ""
            while True:  # a new connection per page: the kernel may pick either worker
                query = f"?page_size=1&page_token={token}" if token else "?page_size=1"
                with urllib.request.urlopen(url + query, timeout=10) as response:
                    page = json.loads(response.read())
                seen += [task["id"] for task in page["tasks"]]
                token = page.get("next_page_token", "")
                if not token:
                    break
            assert len(seen) == len(set(seen)) == 6
        finally:
            code, output = stop(process)
        assert code == 0, output
        assert "worker-0 INFO taskgate.server.lifecycle: taskgate ready" in output
        assert "worker-1 INFO taskgate.server.lifecycle: taskgate ready" in output
        assert "Traceback" not in output
