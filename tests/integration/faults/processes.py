"""What the fault tests do to processes: find the embedded PostgreSQL's processes, freeze and
thaw them, wait for a process to end. Linux /proc only; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taskgate.store.embedded_os import read_postmaster_pid, wait_for_exit


def postmaster_pid(pgdata: Path) -> int:
    info = read_postmaster_pid(pgdata)
    assert info is not None, f"no postmaster.pid in {pgdata}"
    return info.pid


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (PostgreSQL's backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat_line.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    return not wait_for_exit(pid, timeout=0)


@contextmanager
def frozen(pgdata: Path) -> Iterator[None]:
    """The embedded PostgreSQL stopped with SIGSTOP (postmaster and every child), always
    resumed with SIGCONT afterwards."""
    postmaster = postmaster_pid(pgdata)
    stopped: list[int] = []
    try:
        for pid in [postmaster, *children(postmaster)]:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def wait_until(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; its last value."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
