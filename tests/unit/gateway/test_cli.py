"""`taskgate gateway`'s command line (docs/decisions.md S6, S7): presets and switches,
TASKGATE_<FLAG> variables, bad values are usage errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskgate.cli import build_parser
from taskgate.command import SettingsError
from taskgate.gateway.cli import gateway_config
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.standalone import StandaloneConfig


def config(argv: list[str], env: dict[str, str] | None = None) -> StandaloneConfig:
    return gateway_config(build_parser(env or {}).parse_args(["gateway", *argv]))


def test_defaults() -> None:
    assert config(["--upstream", "h:1"]) == StandaloneConfig(
        upstream="h:1", options=GatewayOptions.generic(default_timeout=30.0)
    )


def test_presets_and_switches() -> None:
    generic = config(["--upstream", "h:1"], {"TASKGATE_STRICT": "true"})
    assert generic.options.error_style == "status"
    assert not generic.options.use_proto_field_names
    assert generic.options.strict  # from TASKGATE_STRICT
    kfp = config(["--upstream", "h:1", "--preset", "kfp"])
    assert kfp.options.error_style == "kfp"
    assert kfp.options.use_proto_field_names
    json_names = config(["--upstream", "h:1", "--preset", "kfp", "--json-names", "json"])
    assert not json_names.options.use_proto_field_names


def test_environment_variables_and_flags_win() -> None:
    env = {
        "TASKGATE_UPSTREAM": "[::1]:50051",
        "TASKGATE_HTTP_ADDRESS": "0.0.0.0:0",
        "TASKGATE_DESCRIPTOR_SET": "",
        "TASKGATE_TIMEOUT": "0",
        "TASKGATE_REFRESH_INTERVAL": "2.5",
    }
    from_env = config([], env)
    assert (from_env.upstream, from_env.host, from_env.port) == ("[::1]:50051", "0.0.0.0", 0)
    assert from_env.descriptor_set is None  # an empty variable is no file
    assert from_env.options.default_timeout is None  # 0: no deadline
    assert from_env.refresh_interval == 2.5
    flags = config(["--upstream", "h:2", "--descriptor-set", "set.binpb", "--timeout", "5"], env)
    assert (flags.upstream, flags.descriptor_set) == ("h:2", Path("set.binpb"))
    assert flags.options.default_timeout == 5.0


def test_upstream_is_required() -> None:
    with pytest.raises(SettingsError, match="--upstream: required"):
        config([])
    with pytest.raises(SettingsError, match="--upstream: required"):
        config([], {"TASKGATE_UPSTREAM": ""})


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--upstream", "x"], {}, "argument --upstream: expected HOST:PORT"),
        (["--json-names", "x"], {}, "argument --json-names: invalid choice: 'x'"),
        ([], {"TASKGATE_JSON_NAMES": "x"}, "argument --json-names: invalid choice: 'x'"),
        ([], {"TASKGATE_PRESET": "grpc"}, "argument --preset: invalid choice: 'grpc'"),
        (["--timeout", "-1"], {}, "argument --timeout: expected seconds >= 0"),
        ([], {"TASKGATE_REFRESH_INTERVAL": "soon"}, "argument --refresh-interval: expected a"),
        (["--log-level", "x"], {}, "argument --log-level: expected one of"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        config(["--upstream", "h:1", *argv], env)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: taskgate gateway")
    assert message in error
