"""The real `taskgate serve` (python -m server) for the fault tests: output to a file (a pipe
nobody reads could fill and stall the server), readiness, and a bounded stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT = 60.0


def start_serve(
    data_dir: Path, grpc_port: int, http_port: int, log_file: Path, **env: str
) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "TASKGATE_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "TASKGATE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "TASKGATE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    environment.pop("TASKGATE_DATABASE_URL", None)
    with log_file.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "server"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def healthz(http_port: int) -> int | None:
    """GET /healthz on a new connection: its status, or None if the connection failed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def wait_ready(http_port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "taskgate serve exited before it was ready"
        if healthz(http_port) == 200:
            return
        time.sleep(0.1)
    raise AssertionError("taskgate serve did not become ready")


def terminate(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM and wait; SIGKILL if it does not exit in time (then the test fails anyway)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise
