"""Metrics, access lines, JSON logs and request ids (docs/decisions.md P5, P10, P11), on real
processes: `taskgate serve --workers 2 --log-format json`, and `taskgate gateway` in front of a
test upstream that echoes the metadata it receives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from taskgate.api import task_pb2, task_pb2_grpc
from tests.integration.conftest import private_temp_dir
from tests.integration.kfp import new_task
from tests.integration.test_serve_command import start_serve, stop, wait_ready
from tests.upstream_process import UpstreamProcess, free_port, running_upstream

TASK_BODY = json.dumps(
    {
        "pipelineName": "p",
        "runId": "r",
        "mlmdExecutionID": "1",
        "fingerprint": "f",
        "created_at": "2024-01-01T00:00:00Z",
    }
).encode()


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so the kernel may pick any worker); errors too."""
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels`, or None."""
    for line in text.splitlines():
        found = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if found is None or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(found.group(3))
    return None


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of the output, each one JSON object (or the test fails naming the line)."""
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return entries


def test_serve_with_two_workers_counts_every_door_and_logs_json() -> None:
    with private_temp_dir("taskgate-metrics-") as home:
        grpc_port, http_port = free_port(), free_port()
        process = start_serve(
            home / "data", grpc_port, http_port, "--workers", "2", "--log-format", "json"
        )
        base = f"http://127.0.0.1:{http_port}"
        try:
            wait_ready(http_port, process)
            time.sleep(1.0)  # the second worker may still be starting
            json_type = {"Content-Type": "application/json"}
            for i in range(4):
                status, headers, _ = http(
                    f"{base}/apis/v1alpha1/tasks",
                    TASK_BODY,
                    {**json_type, "X-Request-Id": f"r-{i}"},
                )
                assert status == 200
                assert headers["X-Request-Id"] == f"r-{i}"
            status, headers, _ = http(f"{base}/nowhere", headers={"X-Request-Id": "bad id!"})
            assert status == 404
            assert re.fullmatch("[0-9a-f]{32}", headers["X-Request-Id"])
            for i in range(3):  # a new channel each time: either worker
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    task_pb2_grpc.TaskServiceStub(channel).CreateTask(
                        task_pb2.CreateTaskRequest(task=new_task()),
                        metadata=(("x-request-id", f"g-{i}"),),
                    )
            scrapes = [http(f"{base}/metrics")[2].decode() for _ in range(6)]
        finally:
            code, output = stop(process)
        assert code == 0, output

    create = {"service": "api.TaskService", "method": "CreateTask", "code": "OK"}
    for text in scrapes:  # whichever worker answered, the totals of both
        assert sample(text, "taskgate_calls_total", door="rest", **create) == 4, text
        assert sample(text, "taskgate_calls_total", door="grpc", **create) == 3, text
        assert sample(text, "taskgate_calls_total", door="rest", code="NOT_FOUND") == 1
        assert (
            sample(text, "taskgate_call_duration_seconds_count", door="grpc", method="CreateTask")
            == 3
        )
        bucket = sample(
            text,
            "taskgate_call_duration_seconds_bucket",
            door="rest",
            method="CreateTask",
            le="+Inf",
        )  # the 404's series (no method) may come first in a multi-process scrape
        assert bucket == 4
        assert sample(text, "taskgate_ready") == 1
        assert sample(text, "taskgate_build_info", version="0.1.0") == 1
        pool_size = sample(text, "taskgate_db_pool_connections")
        assert pool_size is not None
        assert pool_size >= 2  # one pool per worker, at least one connection each
        assert sample(text, "taskgate_db_pool_acquire_seconds_count") is not None
        assert sample(text, "taskgate_calls_in_flight", door="rest") is not None

    entries = json_lines(output)
    assert {e["level"] for e in entries} <= {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
    assert {e.get("worker") for e in entries if "taskgate ready" in e["msg"]} == {
        "worker-0",
        "worker-1",
    }
    access = [e for e in entries if e["logger"] == "taskgate.access"]
    by_id = {e["request_id"]: e for e in access}
    rest = by_id["r-2"]
    assert rest["door"] == "rest"
    assert rest["method"] == "/api.TaskService/CreateTask"
    assert (rest["code"], rest["status"], rest["peer"]) == ("OK", 200, "127.0.0.1")
    assert isinstance(rest["ms"], float)
    grpc_line = by_id["g-1"]
    assert (grpc_line["door"], grpc_line["code"]) == ("grpc", "OK")
    assert grpc_line["peer"].startswith("ipv4:127.0.0.1:")
    assert next(e for e in access if e["code"] == "NOT_FOUND")["method"] == "-"
    assert "fork_posix" not in output


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as process:
        yield process


def test_gateway_forwards_and_echoes_the_request_id_and_counts(upstream: UpstreamProcess) -> None:
    port = free_port()
    command = [sys.executable, "-m", "taskgate", "gateway", "--upstream", upstream.target]
    process = subprocess.Popen(
        [*command, "--http-address", f"127.0.0.1:{port}", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "ready" in line:
                break
        status, headers, _ = http(f"{base}/v1/echo/x", headers={"X-Request-Id": "abc-123"})
        assert status == 200
        assert headers["X-Request-Id"] == "abc-123"
        assert headers["Grpc-Metadata-X-Echo-X-Request-Id"] == "abc-123"
        status, headers, _ = http(f"{base}/v1/echo/y", headers={"X-Request-Id": "x" * 129})
        made = headers["X-Request-Id"]
        assert re.fullmatch("[0-9a-f]{32}", made)
        assert headers["Grpc-Metadata-X-Echo-X-Request-Id"] == made
        status, _, _ = http(f"{base}/v1/fail", b"{}", {"Content-Type": "text/plain"})
        assert status == 415
        _, headers, body = http(f"{base}/metrics")
        assert headers["Content-Type"].startswith("text/plain")
        text = body.decode()
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        if process.stdout is not None:
            lines += process.stdout.readlines()
            process.stdout.close()

    echo = {"service": "tgtest.Echo", "method": "Echo", "door": "rest"}
    assert sample(text, "taskgate_calls_total", code="OK", **echo) == 2
    assert sample(text, "taskgate_calls_total", method="Fail", code="INVALID_ARGUMENT") == 1
    assert sample(text, "taskgate_ready") == 1
    access = [e for e in json_lines("".join(lines)) if e["logger"] == "taskgate.access"]
    assert [(e["request_id"], e["method"], e["status"]) for e in access] == [
        ("abc-123", "/tgtest.Echo/Echo", 200),
        (made, "/tgtest.Echo/Echo", 200),
        (access[2]["request_id"], "/tgtest.Library/Fail", 415),
    ]
