"""docs/cli.md is the CLI's contract: every command and every flag the parser accepts is documented there."""

import argparse
import re
from pathlib import Path

from app.frontends.cli import build_parser

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _commands_and_flags(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{prefix} {name}".strip()
                yield command, None
                yield from _commands_and_flags(sub, command)
        else:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    yield prefix, option


def test_every_command_and_flag_is_in_the_cli_reference():
    text = REFERENCE.read_text()
    missing = []
    for command, flag in _commands_and_flags(build_parser()):
        if flag is None and not re.search(rf"`{re.escape(command)}[ `]", text):
            missing.append(command)
        elif flag is not None and f"{flag}" not in text:
            missing.append(f"{command} {flag}")
    assert not missing, f"not in docs/cli.md: {missing}"


def test_the_readme_links_the_cli_reference():
    readme = (REFERENCE.parents[1] / "README.md").read_text()
    assert "(docs/cli.md)" in readme
