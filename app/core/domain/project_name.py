"""What a project may be called: the name becomes a folder and a lock file name."""

import re

from app.core.domain.errors import KeelError

# Always used with fullmatch: `$` would let a trailing newline through.
PROJECT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_project_name(name: object) -> bool:
    return isinstance(name, str) and PROJECT_NAME_PATTERN.fullmatch(name) is not None


def check_project_name(name: str) -> str:
    """The name, or a KeelError: every path built from a project name goes through this first,
    so `../x`, `/abs` or `name\\n` never reach the file system."""
    if not is_valid_project_name(name):
        raise KeelError(
            f"invalid project name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name
