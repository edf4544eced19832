"""--loop (docs/decisions.md P30): `serve`, its --workers children and `gateway` run on the
standard library's event loop by default, on uvloop when asked; a bad value is a usage error
naming the flag."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import replace

import pytest
import uvloop

from taskgate import tracing
from taskgate.cli import build_parser
from taskgate.command import LOOPS, loop_factory, run_on_loop
from taskgate.server import lifecycle, workers
from taskgate.server.cli import serve_settings
from taskgate.server.settings import ServeSettings


async def _loop_class() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


@pytest.mark.parametrize(
    ("name", "expected"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.SelectorEventLoop)]
)
def test_run_on_loop_runs_on_the_named_loop(name: str, expected: type[object]) -> None:
    assert issubclass(run_on_loop(_loop_class(), name), expected)


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loop_factory("trio")


def test_asyncio_is_the_default_of_both_commands() -> None:
    assert LOOPS[0] == "asyncio"
    assert ServeSettings().loop == "asyncio"
    assert serve_settings(build_parser({}).parse_args(["serve"])).loop == "asyncio"
    gateway = build_parser({}).parse_args(["gateway", "--upstream", "127.0.0.1:1"])
    assert gateway.loop == "asyncio"


@pytest.mark.parametrize("command", [["serve"], ["gateway", "--upstream", "127.0.0.1:1"]])
def test_the_flag_and_its_variable(command: list[str]) -> None:
    assert build_parser({}).parse_args([*command, "--loop", "uvloop"]).loop == "uvloop"
    assert build_parser({"TASKGATE_LOOP": "uvloop"}).parse_args(command).loop == "uvloop"
    env = {"TASKGATE_LOOP": "uvloop"}
    assert build_parser(env).parse_args([*command, "--loop", "asyncio"]).loop == "asyncio"


def test_uvloop_must_be_installed_to_be_chosen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "uvloop" else real_find_spec(name, *a),
    )
    assert build_parser({}).parse_args(["serve", "--loop", "asyncio"]).loop == "asyncio"
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["serve", "--loop", "uvloop"])
    assert "argument --loop: uvloop is not installed" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "env"), [(["--loop", "trio"], {}), ([], {"TASKGATE_LOOP": "x"})])
def test_a_bad_loop_is_a_usage_error_naming_the_flag(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(env).parse_args(["serve", *argv])
    assert exited.value.code == 2
    assert "argument --loop:" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "expected"), [("uvloop", uvloop.Loop), ("asyncio", None)])
def test_a_worker_runs_on_the_loop_of_its_settings(
    name: str, expected: type[object] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[type[object]] = []

    async def fake_run_serve(settings: ServeSettings, *, reuse_port: bool = False) -> int:
        seen.append(type(asyncio.get_running_loop()))
        return 7

    monkeypatch.setattr(lifecycle, "run_serve", fake_run_serve)
    monkeypatch.setattr(workers, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(tracing, "configure_from_environment", lambda: None)
    with pytest.raises(SystemExit) as exited:
        workers._worker_main(replace(ServeSettings(), loop=name), 0)
    assert exited.value.code == 7
    (loop_class,) = seen
    if expected is None:
        assert not issubclass(loop_class, uvloop.Loop)
    else:
        assert issubclass(loop_class, expected)
