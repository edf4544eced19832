"""`taskgate serve` and `taskgate gateway`: parse flags (each also read from TASKGATE_<FLAG>).

The flag wins over the environment variable, which wins over the default (DECISIONS §2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from taskgate import __version__
from taskgate.server.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_GRPC_ADDRESS,
    DEFAULT_HTTP_ADDRESS,
    Address,
    GatewaySettings,
    ServeSettings,
    SettingsError,
    configure_logging,
)

if TYPE_CHECKING:
    from taskgate.gateway.standalone import StandaloneConfig

# Imports of grpc wait until a command runs: grpc reads GRPC_ENABLE_FORK_SUPPORT when it is
# first imported, and `taskgate --help` need not load it at all.
ENV_PREFIX = "TASKGATE_"
TRUE_WORDS = ("1", "true", "yes", "on")


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _add(
    parser: argparse._ActionsContainer,
    env: Mapping[str, str],
    flag: str,
    help_text: str,
    default: str | None = None,
    **kwargs: object,
) -> None:
    env_name = _env_name(flag)
    value = env.get(env_name, default)
    suffix = f" [env {env_name}" + (f"; default {default}]" if default is not None else "]")
    parser.add_argument(flag, default=value, help=help_text + suffix, **kwargs)  # type: ignore[arg-type]  # argparse's kwargs are loosely typed


def _add_switch(
    parser: argparse.ArgumentParser, env: Mapping[str, str], flag: str, help_text: str
) -> None:
    env_name = _env_name(flag)
    default = env.get(env_name, "").lower() in TRUE_WORDS
    parser.add_argument(
        flag, action="store_true", default=default, help=f"{help_text} [env {env_name}]"
    )


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskgate",
        description="Kubeflow Pipelines' TaskService over gRPC and REST, and a REST gateway for "
        "any gRPC server with google.api.http annotations.",
    )
    parser.add_argument("--version", action="version", version=f"taskgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve api.TaskService over gRPC and REST on PostgreSQL",
        description="Serve api.TaskService over gRPC (with reflection and health) and REST. "
        "Without --database-url, an embedded PostgreSQL is started in --data-dir.",
    )
    add_serve_arguments(serve, env)
    gateway = commands.add_parser(
        "gateway",
        help="serve REST for any reflection-enabled gRPC server",
        description="Discover an upstream's services through server reflection (or a descriptor "
        "set) and serve REST for every method with a google.api.http option.",
    )
    _add(gateway, env, "--upstream", "the gRPC server to front, HOST:PORT", metavar="HOST:PORT")
    _add(gateway, env, "--http-address", "where to serve REST", DEFAULT_HTTP_ADDRESS)
    _add(gateway, env, "--descriptor-set", "a FileDescriptorSet file instead of reflection")
    _add_switch(gateway, env, "--strict", "answer 400 for unknown query parameters and fields")
    _add(
        gateway,
        env,
        "--json-names",
        "JSON keys: proto field names or json_name (default json; proto with --preset kfp)",
        choices=("proto", "json"),
    )
    _add_switch(gateway, env, "--emit-unpopulated", "write fields that hold default values")
    _add(gateway, env, "--preset", "kfp: KFP's REST output and error shape", choices=("kfp",))
    _add(gateway, env, "--refresh-interval", "seconds between re-discoveries (0: never)", "0")
    _add(
        gateway,
        env,
        "--timeout",
        "deadline in seconds of a unary call that has no Grpc-Timeout header (0: none)",
        "30",
    )
    _add(gateway, env, "--log-level", "DEBUG, INFO, WARNING or ERROR", "INFO")
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    _add(parser, env, "--grpc-address", "where to serve gRPC", DEFAULT_GRPC_ADDRESS)
    _add(parser, env, "--http-address", "where to serve REST", DEFAULT_HTTP_ADDRESS)
    database = parser.add_mutually_exclusive_group()
    _add(database, env, "--database-url", "an external PostgreSQL (postgresql://...)")
    _add(
        database,
        env,
        "--data-dir",
        "where the embedded PostgreSQL keeps its data",
        str(DEFAULT_DATA_DIR),
    )
    _add(parser, env, "--workers", "worker processes sharing the ports", "1")
    _add(parser, env, "--log-level", "DEBUG, INFO, WARNING or ERROR", "INFO")


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    try:
        workers = int(args.workers)
    except ValueError:
        raise SettingsError(f"--workers: expected a number, got {args.workers!r}") from None
    return ServeSettings(
        grpc_address=Address.parse(args.grpc_address, "--grpc-address"),
        http_address=Address.parse(args.http_address, "--http-address"),
        database_url=args.database_url or None,
        data_dir=Path(args.data_dir),
        workers=workers,
        log_level=args.log_level.upper(),
    )


def gateway_settings(args: argparse.Namespace) -> GatewaySettings:
    if not args.upstream:
        raise SettingsError("--upstream: required (HOST:PORT of the gRPC server to front)")
    try:
        refresh = float(args.refresh_interval)
    except ValueError:
        raise SettingsError("--refresh-interval: expected a number of seconds") from None
    try:
        timeout = float(args.timeout)
    except ValueError:
        raise SettingsError("--timeout: expected a number of seconds") from None
    return GatewaySettings(
        upstream=Address.parse(args.upstream, "--upstream"),
        http_address=Address.parse(args.http_address, "--http-address"),
        descriptor_set=Path(args.descriptor_set) if args.descriptor_set else None,
        strict=args.strict,
        json_names=args.json_names,
        emit_unpopulated=args.emit_unpopulated,
        preset=args.preset,
        refresh_interval=refresh,
        timeout=timeout,
        log_level=args.log_level.upper(),
    )


def standalone_config(settings: GatewaySettings) -> StandaloneConfig:
    """The gateway's own configuration, from the command line's settings (DECISIONS §5)."""
    from taskgate.gateway.options import GatewayOptions
    from taskgate.gateway.standalone import StandaloneConfig

    options = GatewayOptions.kfp() if settings.preset == "kfp" else GatewayOptions.generic()
    options = replace(
        options,
        strict=settings.strict or options.strict,
        emit_unpopulated=settings.emit_unpopulated or options.emit_unpopulated,
        default_timeout=settings.timeout or None,
        use_proto_field_names=(
            options.use_proto_field_names
            if settings.json_names is None
            else settings.json_names == "proto"
        ),
    )
    return StandaloneConfig(
        upstream=str(settings.upstream),
        host=settings.http_address.host,
        port=settings.http_address.port,
        options=options,
        descriptor_set=settings.descriptor_set,
        refresh_interval=settings.refresh_interval,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    # taskgate forks only to run pg_ctl (embedded PostgreSQL); grpc's fork handlers have nothing
    # to do there and would log a warning at every shutdown. Read by grpc when a server starts.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    parser = build_parser(os.environ if env is None else env)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            settings = serve_settings(args)
            configure_logging(settings.log_level)
            if settings.workers > 1:
                from taskgate.server.workers import run_workers

                return asyncio.run(run_workers(settings))
            from taskgate.server.lifecycle import run_serve

            return asyncio.run(run_serve(settings))
        gateway = gateway_settings(args)
        configure_logging(gateway.log_level)
        from taskgate.gateway.standalone import run_gateway

        return asyncio.run(run_gateway(standalone_config(gateway)))
    except SettingsError as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
