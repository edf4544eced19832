"""Secrets stay secret: the database password never reaches a log line or an error,
--database-url-file reads the URL from a mounted secret without echoing it, and the embedded
PostgreSQL's socket directory is reachable only by its owner (docs/security.md)."""

from __future__ import annotations

import logging
import os
import pwd
import stat
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest

from taskgate.command import SettingsError
from taskgate.server.cli import build_parser, serve_settings
from taskgate.server.lifecycle import serving
from taskgate.store.embedded_os import SYSTEM_USER, make_private_dir
from taskgate.store.errors import StoreError
from taskgate.store.pool import describe_dsn
from tests.integration.servers import serve_settings as settings_for
from tests.integration.tls.secrets_helpers import url_with_password
from tests.upstream_process import free_port


async def test_the_database_password_is_never_logged(
    database_url: str, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    with_password = url_with_password(database_url)
    if with_password is None:
        pytest.skip("TEST_DATABASE_URL has no password to check")
    url, password = with_password
    caplog.set_level(logging.DEBUG)
    async with (
        serving(replace(settings_for(url), database_url=url)) as running,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{running.http_port}/apis/v1alpha1/tasks") as response,
    ):
        assert response.status == 200
    assert "connected to PostgreSQL at" in caplog.text
    assert password not in caplog.text

    unreachable = f"postgresql://taskgate:{password}@127.0.0.1:{free_port()}/tasks"
    with pytest.raises(StoreError) as refused:
        async with serving(replace(settings_for(unreachable), database_url=unreachable)):
            pass
    assert f"cannot connect to 127.0.0.1:{urlsplit(unreachable).port}/tasks" in str(refused.value)
    assert password not in str(refused.value)
    assert password not in caplog.text


def test_describe_dsn_never_shows_the_password() -> None:
    assert describe_dsn("postgresql://u:s3cret@db:6432/tasks") == "db:6432/tasks"
    assert "s3cret" not in describe_dsn("postgresql://u@db/tasks?password=s3cret")
    assert "s3cret" not in describe_dsn("postgresql://u:s3cret@[::1/tasks")


def test_database_url_file_reads_a_mounted_secret_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://taskgate:s3cret@db:5432/tasks\n")
    parser = build_parser({})
    settings = serve_settings(parser.parse_args(["--database-url-file", str(secret)]))
    assert settings.database_url == "postgresql://taskgate:s3cret@db:5432/tasks"
    env_settings = serve_settings(
        build_parser({"TASKGATE_DATABASE_URL_FILE": str(secret)}).parse_args([])
    )
    assert env_settings.database_url == settings.database_url

    secret.write_text("hunter2\n")  # not a URL: the error names the file, not its contents
    with pytest.raises(SystemExit) as usage:
        build_parser({}).parse_args(["--database-url-file", str(secret)])
    assert usage.value.code == 2
    error = capsys.readouterr().err
    assert f"--database-url-file: {secret}: expected a postgresql:// URL" in error
    assert "hunter2" not in error

    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["--database-url-file", str(tmp_path / "missing")])
    assert "cannot read" in capsys.readouterr().err

    secret.write_text("postgresql://taskgate:s3cret@db:5432/tasks")
    both = build_parser({"TASKGATE_DATABASE_URL": "postgresql://u:pw@db/x"}).parse_args(
        ["--database-url-file", str(secret)]
    )
    with pytest.raises(SettingsError, match="give --database-url or --database-url-file"):
        serve_settings(both)


def test_embedded_socket_directory_is_private(server_url: str) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("an external PostgreSQL: no embedded socket directory")
    socket_dir = Path(parse_qs(urlsplit(server_url).query)["host"][0])
    info = socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700  # no group or other access at all
    assert any(socket_dir.glob(".s.PGSQL.*"))
    if os.geteuid() == 0:  # the server runs as the system user, which owns the directory
        assert info.st_uid == pwd.getpwnam(SYSTEM_USER).pw_uid
    else:
        assert info.st_uid == os.geteuid()


def test_a_shared_socket_directory_is_made_private_or_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)  # as someone might leave it in /tmp
    make_private_dir(loose, None)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700

    planted = tmp_path / "planted"
    planted.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(StoreError, match="is not a directory"):
        make_private_dir(planted, None)

    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 54321, 54321)
        with pytest.raises(StoreError, match="belongs to another user"):
            make_private_dir(foreign, None)
