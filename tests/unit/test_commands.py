"""The `taskgate` command line as a user meets it: each sub-command's usage on its own errors,
KFP-style addresses (`:8887`, `[::]:8887`), `taskgate migrate`'s flags, and
docs/configuration.md generated from the parsers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from taskgate.cli import build_parser, main
from taskgate.command import Address, SettingsError, seconds
from taskgate.reference import configuration_reference

REPOSITORY = Path(__file__).resolve().parents[2]


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(list(argv), env={})
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "usage", "message"),
    [
        (("serve", "--workers", "x"), "usage: taskgate serve", "argument --workers"),
        (("serve", "--bogus"), "usage: taskgate serve", "unrecognized arguments: --bogus"),
        (("gateway", "--bogus"), "usage: taskgate gateway", "unrecognized arguments: --bogus"),
        # Raised after parsing (SettingsError), still the sub-command's usage.
        (("gateway",), "usage: taskgate gateway", "--upstream: required"),
        (("gateway", "--upstream", ":8887"), "usage: taskgate gateway", "a host to connect"),
        (("migrate", "--workers", "2"), "usage: taskgate migrate", "unrecognized arguments"),
        (
            ("migrate", "--database-url", "mysql://x"),
            "usage: taskgate migrate",
            "expected a postgresql:// URL",
        ),
    ],
)
def test_a_sub_command_prints_its_own_usage_on_its_errors(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], usage: str, message: str
) -> None:
    err = _usage_error(capsys, *argv)
    assert err.startswith(usage)
    assert "usage: taskgate [-h]" not in err
    command = argv[0]
    assert f"taskgate {command}: error: " in err
    assert message in err


def test_the_top_level_usage_is_for_top_level_errors(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "frobnicate")
    assert err.startswith("usage: taskgate [-h]")


@pytest.mark.parametrize(
    ("text", "host", "grpc_target", "rest_host"),
    [
        (":8887", "", "[::]:8887", ""),  # KFP's form: every interface
        ("[::]:8887", "::", "[::]:8887", ""),  # dual-stack on both doors
        ("0.0.0.0:8887", "0.0.0.0", "0.0.0.0:8887", "0.0.0.0"),  # IPv4 only
        ("127.0.0.1:8887", "127.0.0.1", "127.0.0.1:8887", "127.0.0.1"),
        ("[::1]:8887", "::1", "[::1]:8887", "::1"),
        ("localhost:0", "localhost", "localhost:0", "localhost"),
    ],
)
def test_addresses(text: str, host: str, grpc_target: str, rest_host: str) -> None:
    address = Address.parse(text)
    assert (address.host, address.port) == (host, int(text.rpartition(":")[2]))
    assert address.grpc_target == grpc_target
    assert address.rest_host == rest_host


@pytest.mark.parametrize("text", ["8887", "host", "host:", "host:x", ":70000", "[::1:80", "[]:80"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SettingsError):
        Address.parse(text)


def test_serve_takes_kfp_style_addresses() -> None:
    args = build_parser({}).parse_args(["serve", "--grpc-address", ":8887"])
    assert args.grpc_address == Address("", 8887)
    args = build_parser({"TASKGATE_HTTP_ADDRESS": "[::]:8888"}).parse_args(["serve"])
    assert args.http_address == Address("::", 8888)


def test_migrate_takes_the_database_flags_of_serve(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("postgresql://u:secret@db.example:5432/tasks\n")
    parser = build_parser({})
    args = parser.parse_args(["migrate", "--database-url-file", str(url_file)])
    assert args.database_url_file == "postgresql://u:secret@db.example:5432/tasks"
    env = {"TASKGATE_DATABASE_URL": "postgresql://db.example/tasks"}
    assert build_parser(env).parse_args(["migrate"]).database_url == env["TASKGATE_DATABASE_URL"]
    assert parser.parse_args(["migrate", "--data-dir", "d"]).data_dir == Path("d")


def test_migrate_refuses_two_databases(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "migrate", "--database-url", "postgresql://h/d", "--data-dir", "d")
    assert "not allowed with argument" in err


def test_every_sub_command_is_in_the_reference() -> None:
    reference = configuration_reference()
    parser = build_parser({})
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert f"## `taskgate {name}`" in reference
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in reference


def test_the_committed_configuration_reference_is_what_the_code_generates() -> None:
    committed = (REPOSITORY / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == configuration_reference(), (
        "docs/configuration.md is stale: run `python -m taskgate.reference > docs/configuration.md`"
    )


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "soon"])
def test_seconds_must_be_a_finite_number_not_below_zero(text: str) -> None:
    with pytest.raises(SettingsError, match="seconds"):
        seconds(text)


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("2.5", 2.5), ("1e3", 1000.0)])
def test_seconds(text: str, value: float) -> None:
    assert seconds(text) == value
