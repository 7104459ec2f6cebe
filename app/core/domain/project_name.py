"""What a project may be called: the name becomes a folder and a lock file name."""

import re

from app.core.domain.errors import KeelError

PROJECT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_valid_project_name(name: str) -> bool:
    return bool(PROJECT_NAME_PATTERN.match(name or ""))


def check_project_name(name: str) -> str:
    if not is_valid_project_name(name):
        raise KeelError(
            f"invalid project name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name
