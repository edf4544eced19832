"""Run `tests.upstream_server` as a child process for a test, and stop it by its PID.

`running_upstream()` (sync, for module-scoped fixtures) and `start_upstream()` (async) wait for
`LISTENING <port>` for at most `STARTUP_TIMEOUT` seconds and always stop the process they started.
`serve_handlers()` runs a few raw handlers in-process, for misbehaving upstreams.
"""

from __future__ import annotations

import asyncio
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class UpstreamProcess:
    """A running test upstream: where it listens, and its process."""

    port: int
    process: subprocess.Popen[str]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    """A port that was free a moment ago (for servers that must come back on the same port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch_upstream(*args: str, port: int = 0) -> UpstreamProcess:
    """Start `python -m tests.upstream_server --port PORT ARGS` and wait until it listens."""
    command = [sys.executable, "-m", "tests.upstream_server", "--port", str(port), *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        return UpstreamProcess(_read_port(process), process)
    except BaseException:
        stop_upstream(process)
        raise


def _read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the test upstream exited early (code {process.wait()})")
            if line.startswith("LISTENING "):
                return int(line.split()[1])
    raise RuntimeError(f"the test upstream did not listen within {STARTUP_TIMEOUT} s")


def stop_upstream(process: subprocess.Popen[str]) -> int:
    """SIGTERM the process (by PID, through Popen), then SIGKILL it if it lingers; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


@contextmanager
def running_upstream(*args: str, port: int = 0) -> Iterator[UpstreamProcess]:
    upstream = launch_upstream(*args, port=port)
    try:
        yield upstream
    finally:
        stop_upstream(upstream.process)


@asynccontextmanager
async def start_upstream(
    *args: str, port: int = 0
) -> AsyncIterator[tuple[int, subprocess.Popen[str]]]:
    """The async form: yields (port, process) without blocking the event loop."""
    upstream = await asyncio.to_thread(launch_upstream, *args, port=port)
    try:
        yield upstream.port, upstream.process
    finally:
        await asyncio.to_thread(stop_upstream, upstream.process)


@asynccontextmanager
async def serve_handlers(
    service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
) -> AsyncIterator[str]:
    """An in-process server on 127.0.0.1 with `handlers` for `service`; yields its target."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, handlers)])
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        yield target
    finally:
        await server.stop(None)
