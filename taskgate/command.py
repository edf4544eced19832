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
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    """HOST:PORT, with [v6]:PORT accepted; port 0 asks the OS for a free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
            raise SettingsError(f"expected HOST:PORT (e.g. 127.0.0.1:8887), got {text!r}")
        return cls(host.removeprefix("[").removesuffix("]"), int(port_text))

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
    """A number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise SettingsError("expected a number of seconds") from None
    if value < 0:
        raise SettingsError("expected seconds >= 0")
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


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the chosen command (its `run` default); the exit code."""
    # taskgate forks only to run pg_ctl (embedded PostgreSQL); grpc's fork handlers have nothing
    # to do there and would log a warning at every shutdown. Read by grpc when a server starts.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    args = parser.parse_args(argv)
    run: Run = args.run
    try:
        return run(args)
    except SettingsError as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        return 130


def configure_logging(level: str, prefix: str = "") -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
    )


class SignalHandlers:
    """`with SignalHandlers() as signals:` inside the running loop: SIGTERM and SIGINT set
    `signals.stop` for as long as the block runs (a second one during a graceful shutdown
    changes nothing), `signals.on` handles more; all are removed when the block ends."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._installed: list[signal.Signals] = []

    def on(self, signum: signal.Signals, handler: Callable[[], object]) -> None:
        """Call `handler` on the loop when `signum` arrives, until the block ends."""
        asyncio.get_running_loop().add_signal_handler(signum, handler)
        self._installed.append(signum)

    def __enter__(self) -> SignalHandlers:
        for signum in STOP_SIGNALS:
            self.on(signum, self.stop.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        while self._installed:
            loop.remove_signal_handler(self._installed.pop())
