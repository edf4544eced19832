"""The top-level `taskgate` command: its version, its two commands, and what it loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskgate import __version__
from taskgate.cli import build_parser


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"taskgate {__version__}\n"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args([])
    assert exited.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_reading_the_flags_loads_neither_grpc_nor_aiohttp() -> None:
    # grpc reads GRPC_ENABLE_FORK_SUPPORT when it is imported: the command sets it first.
    code = "import sys, taskgate.cli; print(sorted({'grpc', 'aiohttp'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded == "[]\n"
