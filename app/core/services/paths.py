"""Paths the user names for Keel to write (--output, a save dialog, a backup destination).

Every service that writes to a user-given path goes through `user_output`: a path that
resolves (through symlinks and `..`, existing or not) to anywhere under the workspace
root is refused before anything is written, so no command can replace the registry,
a model artifact or a dataset version. Outside the workspace, writing and overwriting
work as usual, atomically (temporary name, then rename).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.domain.errors import KeelError, is_disk_full
from app.core.fileio import atomic_path


class OutputInsideWorkspace(KeelError):
    """A user-given output path that would write into the workspace's own files."""


def is_inside(path: Path, root: Path) -> bool:
    """Whether path (resolved through symlinks and `..`, existing or not) is root or under it."""
    resolved = Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)
    return resolved == root.resolve() or resolved.is_relative_to(root.resolve())


def check_output_path(workspace_root: Path, path: str | os.PathLike, what: str = "the output") -> Path:
    """The path, or OutputInsideWorkspace (exit 2) if writing it would touch the workspace."""
    path = Path(path).expanduser()
    if is_inside(path, Path(workspace_root)):
        raise OutputInsideWorkspace(
            f"{path}: is inside the workspace {workspace_root}; {what} must be outside the workspace "
            "(Keel never writes a given path into its own files)")
    return path


@contextmanager
def user_output(workspace_root: Path, path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path that replaces `path` on success. Refuses a path inside the
    workspace; a path that cannot be written is the user's to fix (exit 2, naming it)."""
    path = check_output_path(workspace_root, path)
    if path.is_dir():
        raise KeelError(f"{path}: is a directory; give a file name for the output")
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise KeelError(f"cannot write {path}: {exc.strerror or exc}") from None

