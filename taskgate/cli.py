"""`taskgate`: the command line. `serve` lives in server/cli.py, `gateway` in gateway/cli.py.

Each flag is also read from TASKGATE_<FLAG> (taskgate/command.py); the flag wins over the
environment variable, which wins over the default (docs/decisions.md S2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from taskgate import __version__
from taskgate.command import run_command
from taskgate.gateway import cli as gateway_cli
from taskgate.server import cli as server_cli
from taskgate.server import migrate_cli


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskgate",
        description="Kubeflow Pipelines' TaskService over gRPC and REST, and a REST gateway for "
        "any gRPC server with google.api.http annotations.",
    )
    parser.add_argument("--version", action="version", version=f"taskgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help=server_cli.HELP, description=server_cli.DESCRIPTION)
    server_cli.add_arguments(serve, env)
    gateway = commands.add_parser(
        "gateway", help=gateway_cli.HELP, description=gateway_cli.DESCRIPTION
    )
    gateway_cli.add_arguments(gateway, env)
    migrate = commands.add_parser(
        "migrate", help=migrate_cli.HELP, description=migrate_cli.DESCRIPTION
    )
    migrate_cli.add_arguments(migrate, env)
    # Each sub-command's own errors print its own usage (taskgate/command.py, run_command).
    for command in (serve, gateway, migrate):
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_command(build_parser(os.environ if env is None else env), argv)
