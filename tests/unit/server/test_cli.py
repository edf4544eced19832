"""`taskgate serve`'s command line (docs/decisions.md S1-S5): defaults, TASKGATE_<FLAG>
variables, flag wins, bad values are usage errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskgate.cli import build_parser
from taskgate.command import Address
from taskgate.server import cli as server_cli
from taskgate.server.cli import serve_settings
from taskgate.server.settings import ServeSettings


def serve(argv: list[str], env: dict[str, str] | None = None) -> ServeSettings:
    return serve_settings(build_parser(env or {}).parse_args(["serve", *argv]))


def test_serve_defaults() -> None:
    assert serve([]) == ServeSettings()
    settings = serve([])
    assert settings.grpc_address == Address("127.0.0.1", 8887)
    assert settings.http_address == Address("127.0.0.1", 8888)
    assert settings.database_url is None
    assert settings.data_dir == Path(".taskgate")
    assert settings.workers == 1
    assert settings.log_level == "INFO"


def test_environment_variables_and_flags_win() -> None:
    env = {
        "TASKGATE_GRPC_ADDRESS": "0.0.0.0:9000",
        "TASKGATE_DATABASE_URL": "postgresql://u:p@db:5432/x",
        "TASKGATE_LOG_LEVEL": "debug",
        "TASKGATE_WORKERS": "3",
    }
    settings = serve([], env)
    assert settings.grpc_address == Address("0.0.0.0", 9000)
    assert settings.database_url == "postgresql://u:p@db:5432/x"
    assert settings.log_level == "DEBUG"
    assert settings.workers == 3
    assert serve(["--grpc-address", "[::1]:7000"], env).grpc_address == Address("::1", 7000)
    # An empty variable is no database URL: the embedded PostgreSQL.
    assert serve([], {"TASKGATE_DATABASE_URL": ""}).database_url is None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--grpc-address", "8887"], {}, "argument --grpc-address: expected HOST:PORT"),
        (["--http-address", "localhost:99999"], {}, "argument --http-address: expected HOST:PORT"),
        (["--workers", "many"], {}, "argument --workers: expected a whole number"),
        (["--workers", "0"], {}, "argument --workers: expected a number >= 1"),
        (["--log-level", "LOUD"], {}, "argument --log-level: expected one of"),
        (
            ["--database-url", "mysql://x"],
            {},
            "argument --database-url: expected a postgresql:// URL",
        ),
        ([], {"TASKGATE_WORKERS": "many"}, "argument --workers: expected a whole number"),
        ([], {"TASKGATE_GRPC_ADDRESS": "x"}, "argument --grpc-address: expected HOST:PORT"),
        ([], {"TASKGATE_LOG_LEVEL": "loud"}, "argument --log-level: expected one of"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        serve(argv, env)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: taskgate serve")
    assert message in error


def test_database_url_and_data_dir_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(
            ["serve", "--database-url", "postgresql://x", "--data-dir", "d"]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_python_m_server_is_taskgate_serve(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TASKGATE_WORKERS": "2"}
    alone = server_cli.build_parser(env)
    assert serve_settings(alone.parse_args(["--data-dir", "d"])) == serve(["--data-dir", "d"], env)
    with pytest.raises(SystemExit):
        alone.parse_args(["--help"])
    help_alone = capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser(env).parse_args(["serve", "--help"])
    assert capsys.readouterr().out == help_alone
