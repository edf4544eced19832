"""The command-line contract (DECISIONS §2): defaults, TASKGATE_<FLAG> variables, flag wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskgate.server.cli import build_parser, gateway_settings, serve_settings, standalone_config
from taskgate.server.settings import Address, ServeSettings, SettingsError


def serve(argv: list[str], env: dict[str, str] | None = None) -> ServeSettings:
    return serve_settings(build_parser(env or {}).parse_args(["serve", *argv]))


def test_serve_defaults() -> None:
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
    }
    settings = serve([], env)
    assert settings.grpc_address == Address("0.0.0.0", 9000)
    assert settings.database_url == "postgresql://u:p@db:5432/x"
    assert settings.log_level == "DEBUG"
    assert serve(["--grpc-address", "[::1]:7000"], env).grpc_address == Address("::1", 7000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grpc-address", "8887"], "--grpc-address: expected HOST:PORT"),
        (["--http-address", "localhost:99999"], "--http-address: expected HOST:PORT"),
        (["--workers", "many"], "--workers: expected a number"),
        (["--workers", "0"], "--workers: expected a positive number"),
        (["--log-level", "LOUD"], "--log-level: expected one of"),
        (["--database-url", "mysql://x"], "--database-url: expected a postgresql:// URL"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        serve(argv)


def test_database_url_and_data_dir_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(
            ["serve", "--database-url", "postgresql://x", "--data-dir", "d"]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_gateway_presets_and_switches() -> None:
    parse = build_parser({"TASKGATE_STRICT": "true"}).parse_args
    generic = standalone_config(gateway_settings(parse(["gateway", "--upstream", "h:1"])))
    assert generic.options.error_style == "status"
    assert not generic.options.use_proto_field_names
    assert generic.options.strict  # from TASKGATE_STRICT
    kfp = standalone_config(
        gateway_settings(parse(["gateway", "--upstream", "h:1", "--preset", "kfp"]))
    )
    assert kfp.options.error_style == "kfp"
    assert kfp.options.use_proto_field_names
    json_names = standalone_config(
        gateway_settings(
            parse(["gateway", "--upstream", "h:1", "--preset", "kfp", "--json-names", "json"])
        )
    )
    assert not json_names.options.use_proto_field_names
    with pytest.raises(SettingsError, match="--upstream: required"):
        gateway_settings(build_parser({}).parse_args(["gateway"]))
