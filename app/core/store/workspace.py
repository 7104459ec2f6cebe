"""Where Keel keeps its files, and the locks that keep one writer at a time.

Resolution order: --workspace DIR, then $KEEL_WORKSPACE, then models_store/ beside
main.py in a source checkout, then the platform's user data folder.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app import SOURCE_ROOT
from app.core.domain.errors import BusyError, KeelError
from app.core.domain.project_name import check_project_name


def resolve_workspace(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    from_env = os.environ.get("KEEL_WORKSPACE")
    if from_env:
        return Path(from_env).expanduser().resolve()
    if (SOURCE_ROOT / "main.py").exists() and (SOURCE_ROOT / "models_store").is_dir():
        return SOURCE_ROOT / "models_store"
    import platformdirs

    return Path(platformdirs.user_data_dir("keel", appauthor=False))


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, explicit: str | os.PathLike | None = None) -> "Workspace":
        workspace = cls(resolve_workspace(explicit))
        if workspace.root.exists() and not workspace.root.is_dir():
            raise KeelError(f"workspace {workspace.root} is a file, not a folder")
        try:
            workspace.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KeelError(f"cannot create the workspace folder {workspace.root}: {exc.strerror}") from None
        return workspace

    @property
    def registry_path(self) -> Path:
        return self.root / "registry.db"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "keel.log"

    @property
    def lock_path(self) -> Path:
        return self.root / "keel.lock"

    def artifact_dir(self, project: str) -> Path:
        return self.root / "artifacts" / check_project_name(project)

    def dataset_dir(self, project: str) -> Path:
        return self.root / "datasets" / check_project_name(project)

    def project_dir(self, project: str) -> Path:
        return self.root / "projects" / check_project_name(project)

    def inbox_dir(self, project: str) -> Path:
        return self.project_dir(project) / "inbox"

    def manifest_path(self, project: str) -> Path:
        return self.project_dir(project) / "production.json"

    @property
    def demo_dir(self) -> Path:
        return self.root / "demo"

    def project_lock_path(self, project: str, purpose: str = "") -> Path:
        """The lock file of a project's lifecycle work (or of one purpose: "inbox", "monitor")."""
        suffix = f".{purpose}.lock" if purpose else ".lock"
        return self.root / "locks" / f"{check_project_name(project)}{suffix}"


class FileLock:
    """An advisory lock (flock): the kernel drops it when the holding process dies."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def acquire(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None


@contextmanager
def project_lock(workspace: Workspace, project: str, timeout: float = 600.0) -> Iterator[None]:
    """Serialise lifecycle work on one project across processes."""
    lock = FileLock(workspace.project_lock_path(project))
    if not lock.acquire(timeout=timeout):
        raise BusyError(f"project {project!r} is busy in another process (lock {lock.path})")
    try:
        yield
    finally:
        lock.release()
