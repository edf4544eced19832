"""docs/configuration.md, generated from the real argparse parsers (taskgate/cli.py):
every command, flag, environment variable, default and help text.

    python -m taskgate.reference > docs/configuration.md

tests/unit/test_configuration_reference.py fails when the committed file differs from this
output, so a new or changed flag means running the line above. The parsers are built with an
empty environment, so the defaults shown are the code's, not the caller's TASKGATE_* values.
"""

from __future__ import annotations

import argparse
import re
import sys

from taskgate.cli import build_parser

#: add_flag / add_switch / add_cors_arguments end each help text with `[env NAME...]`.
_ENV_SUFFIX = re.compile(r"\s*\[env (?P<name>[A-Z0-9_]+)(?P<rest>[^\]]*)\]$")

HEADER = """\
# Configuration reference

Generated from the command-line parsers; do not edit by hand. Remake it with
`python -m taskgate.reference > docs/configuration.md` (a test compares this file with the code).

Every flag can also be set with the environment variable shown (decision S2 in
`docs/decisions.md`): a flag wins over its variable, which wins over the default. A switch is on
when its variable is `1`, `true`, `yes` or `on`. `python -m taskgate ...` is `taskgate ...`;
`taskgate --version` prints the version. Addresses are `HOST:PORT`, `[IPv6]:PORT`, or `:PORT`
and `[::]:PORT` for every interface, IPv4 and IPv6 (decision S8).
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flag_cell(action: argparse.Action) -> str:
    flag = ", ".join(f"`{option}`" for option in action.option_strings)
    if action.nargs == 0:
        return flag
    if action.choices is not None:
        value = "|".join(str(choice) for choice in action.choices)
    elif isinstance(action.metavar, str):
        value = action.metavar
    else:
        value = action.dest.upper()
    return f"{flag} `{_cell(value)}`"


def _default_cell(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "off"
    if action.default is None:
        return "—"
    return f"`{action.default}`"


def _help_and_env(action: argparse.Action) -> tuple[str, str]:
    text = " ".join((action.help or "").split())
    match = _ENV_SUFFIX.search(text)
    if match is None:
        return text, "—"
    env = f"`{match['name']}`"
    rest = match["rest"].strip(" ;,")
    if rest and not rest.startswith("default "):
        env += f" ({rest})"
    return text[: match.start()], env


def _command_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `taskgate {name}`", "", " ".join((parser.description or "").split()), ""]
    lines += ["| flag | environment | default | |", "|---|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        help_text, env = _help_and_env(action)
        row = (_flag_cell(action), env, _default_cell(action), _cell(help_text))
        lines.append("| " + " | ".join(row) + " |")
    for group in parser._mutually_exclusive_groups:
        flags = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        lines += ["", f"At most one of {flags}."]
    return [*lines, ""]


def configuration_reference() -> str:
    """docs/configuration.md's text, from the parsers as they are now."""
    parser = build_parser({})
    lines = [HEADER]
    for name, command in _subcommands(parser).items():
        lines += _command_section(name, command)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(configuration_reference())
