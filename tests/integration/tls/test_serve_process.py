"""The real `taskgate serve --workers 2` with TLS and --database-url-file: HTTPS and gRPC over
TLS from start-up, SIGHUP (sent to the parent, as `kill -HUP` would, as soon as the first worker
is ready, while the other may still be starting) rotates the certificate in every worker
without a restart, and the database password shows neither in the process listing nor in the
log."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import trustme

from tests.integration.tls.certs import IDENTITIES, Pki, client_context, der, served_certificate
from tests.integration.tls.secrets_helpers import url_with_password
from tests.upstream_process import free_port

READY_TIMEOUT = 60.0
CONNECTIONS = 8  # new connections per port that must all see the new certificate


def wait_ready(url: str, context: ssl.SSLContext, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "taskgate serve exited before it was ready"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("taskgate serve did not become ready")


def read_lines(process: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """The process's output so far, read by a thread as it comes (until the pipe closes)."""
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        with process.stdout:
            lines.extend(iter(process.stdout.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def wait_for(lines: list[str], *needles: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not all(any(needle in line for line in lines) for needle in needles):
        assert time.monotonic() < deadline, f"never logged {needles}:\n{''.join(lines)}"
        time.sleep(0.1)


def command_lines(pid: int) -> str:
    """The command lines of `pid` and its children, as `ps` shows them."""
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    return "\n".join(Path(f"/proc/{p}/cmdline").read_bytes().decode() for p in pids)


def test_workers_serve_tls_rotate_on_sighup_and_hide_the_password(
    database_url: str, tmp_path: Path
) -> None:
    with_password = url_with_password(database_url)
    if with_password is None:
        pytest.skip("TEST_DATABASE_URL has no password to check")
    url, password = with_password
    url_file = tmp_path / "database-url"
    url_file.write_text(url + "\n")
    url_file.chmod(0o600)
    pki = Pki(tmp_path)
    first = pki.ca.issue_cert(*IDENTITIES)
    files = pki.server_files(first)
    grpc_port, http_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKGATE_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--workers",
            "2",
            "--grpc-address",
            f"127.0.0.1:{grpc_port}",
            "--http-address",
            f"127.0.0.1:{http_port}",
            "--database-url-file",
            str(url_file),
            "--tls-cert",
            str(files.cert),
            "--tls-key",
            str(files.key),
            "--shutdown-grace",
            "2",
        ],
        env={**env, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines, reader = read_lines(process)
    try:
        wait_ready(f"https://127.0.0.1:{http_port}/healthz", client_context(pki.ca), process)
        assert served_certificate(grpc_port, pki.ca, "h2") == der(first)
        listing = command_lines(process.pid)
        assert "--database-url-file" in listing
        assert password not in listing

        new_ca = trustme.CA()
        second = new_ca.issue_cert(*IDENTITIES)
        pki.install(files, second)
        process.send_signal(signal.SIGHUP)
        wait_for(lines, "worker-0 INFO taskgate.server.lifecycle: taskgate ready",
                 "worker-1 INFO taskgate.server.lifecycle: taskgate ready")  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                seen = {
                    served_certificate(port, new_ca, alpn)
                    for port, alpn in ((http_port, "http/1.1"), (grpc_port, "h2"))
                    for _ in range(CONNECTIONS)
                }
            except ssl.SSLError:  # a worker that has not reloaded yet
                assert time.monotonic() < deadline, "the certificate was not rotated"
                time.sleep(0.2)
                continue
            break
        assert seen == {der(second)}
        assert process.poll() is None, "SIGHUP must not stop taskgate"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        reader.join(timeout=10)
    output = "".join(lines)
    assert code == 0, output
    for worker in ("worker-0", "worker-1"):
        assert f"{worker} INFO taskgate.tls: TLS certificates reloaded from --tls-cert" in output
    assert password not in output
    assert "Traceback" not in output
