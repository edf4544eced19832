"""SIGTERM to a real `taskgate gateway` process with calls in flight: `/healthz` 503 on new
connections during `--shutdown-lag` (and calls still accepted), every call in flight answered,
exit 0 within `--shutdown-grace`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.faults.serve_process import healthz, terminate
from tests.upstream_process import UpstreamProcess, free_port, running_upstream

GRACE = 6.0
LAG = 1.5
HELD_MS = 2500  # each call in flight answers this long after it was sent: past the lag
IN_FLIGHT = 4
READY_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    with running_upstream() as running:
        yield running


def _start_gateway(upstream: UpstreamProcess, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable, "-m", "taskgate", "gateway",
                "--upstream", upstream.target,
                "--http-address", f"127.0.0.1:{port}",
                "--shutdown-grace", str(GRACE),
                "--shutdown-lag", str(LAG),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "taskgate gateway exited before it was ready"
        if healthz(port) == 200:
            return
        time.sleep(0.1)
    raise AssertionError("taskgate gateway did not become ready")


async def test_sigterm_drains_the_gateway_within_the_grace(
    upstream: UpstreamProcess, tmp_path: Path
) -> None:
    port = free_port()
    log_file = tmp_path / "gateway.log"
    process = _start_gateway(upstream, port, log_file)
    try:
        await asyncio.to_thread(_wait_ready, port, process)
        outcome = await _drain(process, port)
    finally:
        if process.poll() is None:
            terminate(process, timeout=GRACE + 5)
    log = log_file.read_text()

    code, exit_seconds, in_flight, during_lag, late_call = outcome
    print(f"gateway: SIGTERM to exit {exit_seconds:.1f}s (grace {GRACE}s, lag {LAG}s)")  # noqa: T201
    assert during_lag == 503, log
    assert late_call == 200, log  # a call arriving during the lag is still served
    assert in_flight == [200] * IN_FLIGHT, log
    assert code == 0, log
    assert exit_seconds < GRACE, log
    assert "Traceback" not in log


async def _drain(
    process: subprocess.Popen[bytes], port: int
) -> tuple[int, float, list[int | str], int | None, int | str]:
    url = f"http://127.0.0.1:{port}/v1/fail"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:

        async def held_call() -> int | str:
            try:
                async with http.post(url, json={"delayMs": HELD_MS, "code": 0}) as response:
                    await response.read()
                    return response.status
            except aiohttp.ClientError as error:
                return type(error).__name__

        calls = [asyncio.create_task(held_call()) for _ in range(IN_FLIGHT)]
        await asyncio.sleep(0.5)  # all of them are at the upstream now
        assert not any(call.done() for call in calls), [c.result() for c in calls if c.done()]

        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(LAG / 4)
        during_lag = await asyncio.to_thread(healthz, port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as fresh:
            try:
                async with fresh.post(url, json={"code": 0}) as response:
                    await response.read()
                    late_call: int | str = response.status
            except aiohttp.ClientError as error:
                late_call = type(error).__name__
        in_flight = list(await asyncio.gather(*calls))
    code = await asyncio.to_thread(process.wait, GRACE + 10)
    return code, time.monotonic() - signalled, in_flight, during_lag, late_call
