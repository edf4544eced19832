"""`taskgate gateway`: its flags and how it runs (docs/decisions.md S6, S7).

Each flag is also read from TASKGATE_<FLAG> (taskgate/command.py). The flags become a
`StandaloneConfig` directly: argparse's types convert and check each value, and the preset
with its overrides becomes the `GatewayOptions`. grpc and aiohttp are imported only once the
command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from taskgate.command import (
    DEFAULT_HTTP_ADDRESS,
    Address,
    SettingsError,
    add_cors_arguments,
    add_flag,
    add_limit_arguments,
    add_log_arguments,
    add_loop_argument,
    add_shutdown_arguments,
    add_switch,
    add_tls_arguments,
    configure_logging,
    cors_origins,
    one_of,
    optional,
    run_on_loop,
    seconds,
    tls_files,
)
from taskgate.tls import TLSError, UpstreamTLS

if TYPE_CHECKING:
    from taskgate.gateway.standalone import StandaloneConfig

HELP = "serve REST for any reflection-enabled gRPC server"
DESCRIPTION = (
    "Discover an upstream's services through server reflection (or a descriptor set) and serve "
    "REST for every method with a google.api.http option."
)
JSON_NAMES = ("proto", "json")
PRESETS = ("kfp",)
#: --upstream-client values; the first is the default (docs/decisions.md P37).
UPSTREAM_CLIENTS = ("event-loop", "grpcio")


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """`taskgate gateway`'s flags, defaults from `env`; the parsed namespace runs `run`."""
    add_flag(
        parser,
        env,
        "--upstream",
        "the gRPC server to front, HOST:PORT",
        metavar="HOST:PORT",
        type=optional(Address.parse),
    )
    add_flag(
        parser,
        env,
        "--http-address",
        "where to serve REST",
        str(DEFAULT_HTTP_ADDRESS),
        metavar="HOST:PORT",
        type=Address.parse,
    )
    add_flag(
        parser,
        env,
        "--descriptor-set",
        "a FileDescriptorSet file instead of reflection",
        type=optional(Path),
    )
    add_switch(
        parser,
        env,
        "--strict",
        "answer 400 for unknown query parameters and fields; refuse to start on an HTTP binding "
        "that is invalid or bound twice (else it is skipped with a warning)",
    )
    add_flag(
        parser,
        env,
        "--json-names",
        "JSON keys: proto field names or json_name (default json; proto with --preset kfp)",
        choices=JSON_NAMES,
        type=one_of(*JSON_NAMES),
    )
    add_switch(parser, env, "--emit-unpopulated", "write fields that hold default values")
    add_flag(
        parser,
        env,
        "--preset",
        "kfp: KFP's REST output and error shape",
        choices=PRESETS,
        type=one_of(*PRESETS),
    )
    add_flag(
        parser,
        env,
        "--refresh-interval",
        "seconds between re-discoveries (0: never)",
        "0",
        type=seconds,
    )
    add_flag(
        parser,
        env,
        "--timeout",
        "deadline in seconds of a unary call that has no Grpc-Timeout header (0: none)",
        "30",
        type=seconds,
    )
    add_flag(
        parser,
        env,
        "--upstream-client",
        "how unary calls reach the upstream: event-loop (one HTTP/2 connection run by the event "
        "loop, plaintext upstreams; grpcio carries what it cannot) or grpcio (grpc.aio only)",
        UPSTREAM_CLIENTS[0],
        choices=UPSTREAM_CLIENTS,
        type=one_of(*UPSTREAM_CLIENTS),
    )
    add_shutdown_arguments(parser, env)
    add_tls_arguments(parser, env)
    add_upstream_tls_arguments(parser, env)
    add_log_arguments(parser, env)
    add_loop_argument(parser, env)
    add_limit_arguments(parser, env)
    add_cors_arguments(parser, env)
    parser.set_defaults(run=run)


def add_upstream_tls_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """TLS from the gateway to --upstream (docs/decisions.md P8)."""
    add_switch(parser, env, "--upstream-tls", "connect to the upstream with TLS")
    add_flag(
        parser,
        env,
        "--upstream-ca",
        "PEM CA bundle the upstream's certificate must chain to (implies --upstream-tls; "
        "default: grpc's root certificates)",
        metavar="FILE",
        type=optional(Path),
    )
    add_flag(
        parser,
        env,
        "--upstream-server-name",
        "the name the upstream's certificate must carry, when not the host of --upstream "
        "(implies --upstream-tls)",
        metavar="NAME",
    )


def upstream_tls(args: argparse.Namespace) -> UpstreamTLS | None:
    """--upstream-tls and its options, the CA bundle checked now; None for plaintext."""
    server_name: str | None = args.upstream_server_name or None
    if not (args.upstream_tls or args.upstream_ca is not None or server_name is not None):
        return None
    tls = UpstreamTLS(ca=args.upstream_ca, server_name=server_name)
    try:
        tls.check()
    except TLSError as error:
        raise SettingsError(str(error)) from None
    return tls


def gateway_config(args: argparse.Namespace) -> StandaloneConfig:
    """What the parsed flags ask the gateway to do (docs/decisions.md S7)."""
    if args.upstream is None:
        raise SettingsError("--upstream: required (HOST:PORT of the gRPC server to front)")
    if args.upstream.every_interface:
        raise SettingsError(f"--upstream: a host to connect to is needed, got {args.upstream}")
    from taskgate.gateway.options import GatewayOptions
    from taskgate.gateway.standalone import StandaloneConfig

    preset = GatewayOptions.kfp() if args.preset == "kfp" else GatewayOptions.generic()
    options = replace(
        preset,
        strict=args.strict or preset.strict,
        emit_unpopulated=args.emit_unpopulated or preset.emit_unpopulated,
        default_timeout=args.timeout or None,
        max_body_bytes=args.max_message_bytes,
        max_concurrent_calls=args.max_concurrent_calls,
        use_proto_field_names=(
            preset.use_proto_field_names if args.json_names is None else args.json_names == "proto"
        ),
    )
    http_address: Address = args.http_address
    return StandaloneConfig(
        upstream=str(args.upstream),
        host=http_address.rest_host,
        port=http_address.port,
        options=options,
        descriptor_set=args.descriptor_set,
        refresh_interval=args.refresh_interval,
        shutdown_grace=args.shutdown_grace,
        shutdown_lag=args.shutdown_lag,
        cors_origins=cors_origins(args),
        tls=tls_files(args),
        upstream_tls=upstream_tls(args),
        event_loop_client=args.upstream_client == "event-loop",
    )


def run(args: argparse.Namespace) -> int:
    config = gateway_config(args)
    configure_logging(args.log_level, log_format=args.log_format)
    from taskgate.gateway.standalone import run_gateway
    from taskgate.tracing import configure_from_environment

    configure_from_environment()  # P13: OTEL_* variables, with the SDK installed

    return run_on_loop(run_gateway(config), args.loop)
