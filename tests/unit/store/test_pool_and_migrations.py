"""Pure helpers of store.pool and store.migrate: DSN descriptions and packaged migrations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskgate.store.migrate import load_migrations
from taskgate.store.pool import describe_dsn


@pytest.mark.parametrize(
    ("dsn", "described"),
    [
        ("postgresql://u:secret@db:6432/tasks", "db:6432/tasks"),
        ("postgresql://u:secret@db/tasks", "db/tasks"),
        ("postgresql://postgres@/postgres?host=/run/pg&port=5432", "/run/pg:5432/postgres"),
        ("postgres://127.0.0.1:1", "127.0.0.1:1"),
        ("postgresql://u:p@[::1]:99999/x", "the configured database"),
    ],
)
def test_describe_dsn_never_shows_the_password(dsn: str, described: str) -> None:
    assert describe_dsn(dsn) == described


def test_migrations_are_packaged_in_order() -> None:
    migrations = load_migrations()

    assert [m.name for m in migrations][:1] == ["0001_create_tasks.sql"]
    assert "CREATE TABLE tasks" in migrations[0].sql


def test_migrations_load_outside_the_checkout(tmp_path: Path) -> None:
    """The installed `taskgate serve` runs from anywhere, where the checkout's top-level
    `store` package is not importable: the migrations are found through `taskgate.store`."""
    code = "from taskgate.store.migrate import load_migrations; print(len(load_migrations()))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1
