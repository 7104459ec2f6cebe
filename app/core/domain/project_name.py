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


# File stems that say nothing about the project: the folder names it better.
GENERIC_STEMS = {"initial", "data", "dataset", "train", "training", "first", "input", "sample", "export", "file",
                 "batch", "part", "raw", "all", "full", "latest", "new", "test"}


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:64]
    return slug if is_valid_project_name(slug) else ""


def suggest_project_name(file_path: str, taken: set[str] | frozenset = frozenset()) -> str:
    """A name for a project created from `file_path`: the file's stem, or its folder's name when
    the stem is generic (initial.csv, data.csv, batch-001.csv); made valid and not `taken`."""
    from pathlib import PurePath

    path = PurePath(file_path)
    stem = path.name.split(".")[0]
    generic = re.sub(r"[\d_.-]+$", "", stem.lower()) in GENERIC_STEMS or not _slug(stem)
    base = _slug(path.parent.name) if generic and _slug(path.parent.name) else _slug(stem) or "project"
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base[:60]}-{counter}", counter + 1
    return name
