"""What both commands (`serve`, server/cli.py; `gateway`, gateway/cli.py) are made of.

Flags also read TASKGATE_<FLAG>: the flag wins over the environment variable, which wins over
the default (decision S2). An environment value becomes the flag's default, and argparse passes
a string default through the flag's `type` like a value given on the command line, so the types
below convert and check both; a bad value is a usage error that names the flag (exit 2).

Nothing here imports grpc: `run_command` sets GRPC_ENABLE_FORK_SUPPORT before a command loads
it, and `taskgate --help` need not load it at all.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from taskgate.tls import ServerTLSFiles, TLSError, checked_server_files

ENV_PREFIX = "TASKGATE_"
TRUE_WORDS = ("1", "true", "yes", "on")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Signals that stop either command gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: What a command runs once its flags are parsed; the process exit code.
Run = Callable[[argparse.Namespace], int]


class SettingsError(argparse.ArgumentTypeError):
    """A flag or environment variable has a value taskgate cannot use.

    Raised by a flag's type, argparse names the flag; raised by a command after parsing, the
    message names it.
    """


@dataclass(frozen=True, slots=True)
class Address:
    """HOST:PORT, with [v6]:PORT accepted; port 0 asks the OS for a free one.

    An empty host (`:8887`, as KFP writes it) and `[::]` mean every interface, IPv4 and IPv6
    (docs/decisions.md S8); `0.0.0.0` means every IPv4 interface only."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 65535:
            raise SettingsError(f"expected HOST:PORT (e.g. 127.0.0.1:8887), got {text!r}")
        if host.startswith("[") != host.endswith("]") or host in ("[", "[]"):
            raise SettingsError(f"expected HOST:PORT (e.g. 127.0.0.1:8887), got {text!r}")
        return cls(host.removeprefix("[").removesuffix("]"), int(port_text))

    @property
    def every_interface(self) -> bool:
        return self.host in ("", "::")

    @property
    def grpc_target(self) -> str:
        """What grpc binds: `[::]:PORT` is its dual-stack listener."""
        return f"[::]:{self.port}" if self.every_interface else str(self)

    @property
    def rest_host(self) -> str:
        """What aiohttp (asyncio) binds: "" is a listener on every IPv4 and IPv6 address
        (asyncio would bind `::` as IPv6 only)."""
        return "" if self.every_interface else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


#: Where both commands serve REST by default.
DEFAULT_HTTP_ADDRESS = Address("127.0.0.1", 8888)


# Flag types: str -> value, or SettingsError.


def log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def seconds(text: str) -> float:
    """A number of seconds, 0 or more (finite: `nan` and `inf` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise SettingsError("expected a number of seconds") from None
    if not math.isfinite(value):
        raise SettingsError(f"expected a finite number of seconds, got {text!r}")
    if value < 0:
        raise SettingsError("expected seconds >= 0")
    return value


def positive_int(text: str) -> int:
    """A whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise SettingsError(f"expected a number >= 1, got {value}")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    """The type of a flag with `choices` (argparse checks those for command-line values only),
    failing in argparse's words."""

    def choice(text: str) -> str:
        if text not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise SettingsError(f"invalid choice: {text!r} (choose from {allowed})")
        return text

    return choice


def optional(convert: Callable[[str], object]) -> Callable[[str], object]:
    """`convert`, except that an empty value (an empty environment variable) means not set."""

    def maybe(text: str) -> object:
        return convert(text) if text else None

    return maybe


# Flags read from the environment.


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_flag(
    parser: argparse._ActionsContainer,
    env: Mapping[str, str],
    flag: str,
    help_text: str,
    default: str | None = None,
    **kwargs: object,
) -> None:
    """A flag whose default is TASKGATE_<FLAG>, else `default` (given as text, like the
    environment's values, and converted by `type`)."""
    name = env_name(flag)
    value = env.get(name, default)
    suffix = f" [env {name}" + (f"; default {default}]" if default is not None else "]")
    parser.add_argument(flag, default=value, help=help_text + suffix, **kwargs)  # type: ignore[arg-type]  # argparse's kwargs are loosely typed


def add_switch(
    parser: argparse.ArgumentParser, env: Mapping[str, str], flag: str, help_text: str
) -> None:
    """An on/off flag, on when given or when TASKGATE_<FLAG> is 1, true, yes or on."""
    name = env_name(flag)
    default = env.get(name, "").lower() in TRUE_WORDS
    parser.add_argument(
        flag, action="store_true", default=default, help=f"{help_text} [env {name}]"
    )


#: Seconds in-flight calls get after SIGTERM/SIGINT (the lag included).
DEFAULT_SHUTDOWN_GRACE = 10.0
#: Seconds the listeners keep accepting after SIGTERM/SIGINT while readiness says NOT_SERVING,
#: so that load balancers notice before connections are refused.
DEFAULT_SHUTDOWN_LAG = 1.0


def add_shutdown_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--shutdown-grace and --shutdown-lag, shared by `serve` and `gateway`."""
    add_flag(
        parser,
        env,
        "--shutdown-grace",
        "seconds after SIGTERM within which in-flight calls on every door must finish",
        f"{DEFAULT_SHUTDOWN_GRACE:g}",
        type=seconds,
    )
    add_flag(
        parser,
        env,
        "--shutdown-lag",
        "seconds after SIGTERM that listeners keep accepting while /healthz says 503 "
        "(part of the grace, at most half of it)",
        f"{DEFAULT_SHUTDOWN_LAG:g}",
        type=seconds,
    )


def shutdown_lag(grace: float, lag: float) -> float:
    """The lag actually waited: inside the grace budget, leaving at least half of it to the
    in-flight calls."""
    return min(lag, grace / 2)


#: The limits' defaults, as text like the environment's values (taskgate/rpc.py holds the same
#: numbers: MAX_MESSAGE_BYTES, MAX_CONCURRENT_CALLS; this module cannot import grpc).
DEFAULT_MAX_MESSAGE_BYTES = "4194304"
DEFAULT_MAX_CONCURRENT_CALLS = "1000"


def add_limit_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """The limits both commands enforce on both doors (`args.max_message_bytes`,
    `args.max_concurrent_calls`)."""
    add_flag(
        parser,
        env,
        "--max-message-bytes",
        "largest REST body (after decompression) and gRPC message, received or sent; "
        "larger ones get 413 / RESOURCE_EXHAUSTED",
        DEFAULT_MAX_MESSAGE_BYTES,
        metavar="N",
        type=positive_int,
    )
    add_flag(
        parser,
        env,
        "--max-concurrent-calls",
        "calls each door runs at once; more get 429 / RESOURCE_EXHAUSTED at once",
        DEFAULT_MAX_CONCURRENT_CALLS,
        metavar="N",
        type=positive_int,
    )


def tls_files(args: argparse.Namespace) -> ServerTLSFiles | None:
    """The --tls-* files, checked now, so that a bad one is a usage error naming its flag."""
    try:
        return checked_server_files(args.tls_cert, args.tls_key, args.tls_client_ca)
    except TLSError as error:
        raise SettingsError(str(error)) from None


def add_tls_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--tls-cert, --tls-key and --tls-client-ca, shared by `serve` and `gateway`: TLS on every
    port the process serves (off by default). The files are read and checked by taskgate/tls.py
    at start-up and again on SIGHUP."""
    add_flag(
        parser,
        env,
        "--tls-cert",
        "PEM certificate chain to serve both doors with TLS (with --tls-key)",
        metavar="FILE",
        type=optional(Path),
    )
    add_flag(
        parser,
        env,
        "--tls-key",
        "PEM private key of --tls-cert (unencrypted)",
        metavar="FILE",
        type=optional(Path),
    )
    add_flag(
        parser,
        env,
        "--tls-client-ca",
        "PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
        metavar="FILE",
        type=optional(Path),
    )


def cors_origin(text: str) -> str:
    """A browser origin, scheme://host[:port] (no path, no wildcard), lower-cased."""
    origin = text.strip().rstrip("/").lower()
    scheme, sep, host = origin.partition("://")
    if scheme not in ("http", "https") or not sep or not host or "/" in host or "*" in host:
        raise SettingsError(f"expected an origin such as https://ui.example.com, got {text!r}")
    return origin


def add_cors_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--cors-origin ORIGIN (repeatable; TASKGATE_CORS_ORIGIN holds a comma-separated list),
    shared by `serve` and `gateway`; `cors_origins(args)` reads it. Off by default."""
    name = env_name("--cors-origin")
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        type=cors_origin,
        help="let a browser page from ORIGIN call the REST door (CORS); repeatable "
        f"[env {name}, comma-separated]",
    )
    parser.set_defaults(cors_origin_env=env.get(name, ""))


def cors_origins(args: argparse.Namespace) -> tuple[str, ...]:
    """The origins given: the flags if any, else the environment variable's list."""
    given: list[str] | None = args.cors_origin
    if given is None:
        try:
            given = [cors_origin(o) for o in args.cors_origin_env.split(",") if o.strip()]
        except SettingsError as error:
            raise SettingsError(f"{env_name('--cors-origin')}: {error}") from None
    return tuple(dict.fromkeys(given))


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the chosen command (its `run` default); the exit code."""
    # taskgate forks only to run pg_ctl (embedded PostgreSQL); grpc's fork handlers have nothing
    # to do there and would log a warning at every shutdown. Read by grpc when a server starts.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    # grpc's C core logs in its own format (`I0000 … fork_posix.cc …`) to stderr, beside ours:
    # errors only, unless the user asks for more. Read by grpc when it is loaded.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    args, unknown = parser.parse_known_args(argv)
    # A sub-command's errors print its own usage (`taskgate serve: error: ...`), not the top
    # level's: taskgate/cli.py leaves each sub-command's parser in `command_parser`.
    command: argparse.ArgumentParser = getattr(args, "command_parser", parser)
    if unknown:
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    run: Run = args.run
    try:
        return run(args)
    except SettingsError as error:
        command.error(str(error))
    except KeyboardInterrupt:
        return 130


LOG_FORMATS = ("text", "json")


def add_log_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--log-level and --log-format, shared by `serve` and `gateway`."""
    add_flag(parser, env, "--log-level", "DEBUG, INFO, WARNING or ERROR", "INFO", type=log_level)
    add_flag(
        parser,
        env,
        "--log-format",
        "text, or json: one JSON object per line (ts, level, logger, msg, request_id, ...)",
        "text",
        choices=LOG_FORMATS,
        type=one_of(*LOG_FORMATS),
    )


_T = TypeVar("_T")

#: --loop: the event loop both commands run on (decision P30). The standard library's is the
#: default: measured with bench/, uvloop served no more calls and had a far worse p99.
LOOPS = ("asyncio", "uvloop")


def add_loop_argument(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """--loop, shared by `serve` (and its --workers children) and `gateway`."""
    add_flag(
        parser,
        env,
        "--loop",
        "the event loop: asyncio (the standard library's) or uvloop (when installed: "
        "pip install 'taskgate[uvloop]')",
        LOOPS[0],
        choices=LOOPS,
        type=event_loop,
    )


def event_loop(text: str) -> str:
    """--loop's type: one of LOOPS, and uvloop only when it can be imported."""
    name = one_of(*LOOPS)(text)
    if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise SettingsError("uvloop is not installed (pip install 'taskgate[uvloop]')")
    return name


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new event loop of the kind --loop names."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"unknown event loop {name!r}; expected one of {', '.join(LOOPS)}")


def run_on_loop(main: Coroutine[object, object, _T], loop: str) -> _T:
    """`asyncio.run(main)` on the event loop --loop names ("asyncio" is exactly `asyncio.run`:
    a Runner given a factory does not make its loop the thread's current one)."""
    factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=None if loop == "asyncio" else factory) as runner:
        return runner.run(main)


class _SecondStamp:
    """`time.strftime(fmt, convert(second))` of a record's whole second, remembered: every line
    of one second starts with the same text, made once (a sixth of a line's cost, P40)."""

    __slots__ = ("_convert", "_fmt", "_last")

    def __init__(self, fmt: str, convert: Callable[[float], time.struct_time]) -> None:
        self._fmt, self._convert = fmt, convert
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self._last  # one tuple, read and replaced whole: safe from any thread
        if last[0] != second:
            last = self._last = (second, time.strftime(self._fmt, self._convert(second)))
        return last[1]


class TextFormatter(logging.Formatter):
    """logging's own format and `asctime` (`2026-11-30 12:00:00,123`, local time), with the
    date and time of each second made once."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._stamp = _SecondStamp("%Y-%m-%d %H:%M:%S", time.localtime)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self._stamp(record.created)},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC, ms), level, logger, msg, then `worker`,
    `request_id` and an access line's fields (taskgate/access.py) when the record has them,
    and `exc` (the traceback) for an exception."""

    def __init__(self, worker: str = "") -> None:
        super().__init__()
        self._worker = worker
        self._stamp = _SecondStamp("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created)
        entry: dict[str, object] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._worker:
            entry["worker"] = self._worker
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, prefix: str = "", log_format: str = "text") -> None:
    """Root logging to stderr; `prefix` ("worker-0 ") marks a worker's lines. Neither format
    prints a record's thread or process, so records are made without looking them up (P39)."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(prefix.strip()))
    else:
        text = f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"
        handler.setFormatter(TextFormatter(text))
    logging.basicConfig(level=level, handlers=[handler])


class SignalHandlers:
    """`with SignalHandlers() as signals:` inside the running loop: SIGTERM and SIGINT set
    `signals.stop` for as long as the block runs (a second one during a graceful shutdown
    changes nothing), `signals.on` handles more; all are removed when the block ends."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._handlers: dict[signal.Signals, list[Callable[[], object]]] = {}

    def on(self, signum: signal.Signals, handler: Callable[[], object]) -> None:
        """Call `handler` on the loop when `signum` arrives, until the block ends. Handlers of
        one signal all run, in the order they were added (SIGHUP reloads more than one thing)."""
        handlers = self._handlers.setdefault(signum, [])
        if not handlers:
            asyncio.get_running_loop().add_signal_handler(signum, self._dispatch, signum)
            # A signal blocked until it is handled (as `--workers` starts its workers) and sent
            # meanwhile is delivered now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        handlers.append(handler)

    def _dispatch(self, signum: signal.Signals) -> None:
        for handler in list(self._handlers.get(signum, ())):
            handler()

    def __enter__(self) -> SignalHandlers:
        for signum in STOP_SIGNALS:
            self.on(signum, self.stop.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        while self._handlers:
            loop.remove_signal_handler(self._handlers.popitem()[0])
