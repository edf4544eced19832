"""A --database-url taskgate cannot use stops start-up with one line naming the flag."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.upstream_process import free_port


@pytest.mark.parametrize(
    ("url", "exit_code"),
    [
        ("postgresql://u@127.0.0.1:99999/db", 2),  # a port out of range
        ("postgresql://u@[::1/db", 2),  # not a URL
        ("postgresql://u@127.0.0.1:{free}/db", 1),  # nobody listens there
    ],
)
def test_a_bad_database_url_is_one_line_naming_the_flag(url: str, exit_code: int) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--database-url",
            url.format(free=free_port()),
            "--grpc-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert "--database-url" in errors[0]
