"""--max-message-bytes and --max-concurrent-calls on both commands (docs/decisions.md P2, P3)."""

from __future__ import annotations

import pytest

from taskgate import rpc
from taskgate.cli import build_parser
from taskgate.command import DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_MESSAGE_BYTES
from taskgate.gateway.cli import gateway_config
from taskgate.server.cli import serve_settings


def test_the_defaults_are_rpcs() -> None:
    assert int(DEFAULT_MAX_MESSAGE_BYTES) == rpc.MAX_MESSAGE_BYTES == 4 * 1024 * 1024
    assert int(DEFAULT_MAX_CONCURRENT_CALLS) == rpc.MAX_CONCURRENT_CALLS == 1000


def test_serve_takes_the_limits_from_flags_and_environment() -> None:
    env = {"TASKGATE_MAX_CONCURRENT_CALLS": "7"}
    args = build_parser(env).parse_args(["serve", "--max-message-bytes", "1024"])
    settings = serve_settings(args)
    assert (settings.max_message_bytes, settings.max_concurrent_calls) == (1024, 7)


def test_gateway_puts_the_limits_into_its_options() -> None:
    argv = ["gateway", "--upstream", "h:1", "--max-message-bytes", "99"]
    config = gateway_config(build_parser({}).parse_args(argv))
    assert config.options.max_body_bytes == 99
    assert config.options.max_concurrent_calls == 1000


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "lots"])
def test_bad_limits_are_usage_errors(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser({}).parse_args(["serve", "--max-concurrent-calls", value])
    assert exit_.value.code == 2
    assert "--max-concurrent-calls" in capsys.readouterr().err
