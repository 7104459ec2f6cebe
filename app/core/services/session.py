"""The workspace as a front end sees it: where it is, where its log goes, and the lock held by
the one window or runner that writes to it. Light on purpose (no pandas, no registry): the GUI
calls it before its first paint."""

import os
from pathlib import Path

from app.core.domain.errors import BusyError
from app.core.store.workspace import FileLock, Workspace


def open_workspace(explicit: str | os.PathLike | None = None) -> Path:
    """The workspace folder (--workspace, $KEEL_WORKSPACE, models_store/, the user data folder), created
    if missing."""
    return Workspace.open(explicit).root


def log_path(root: str | os.PathLike) -> Path:
    return Workspace(Path(root)).log_path


class WorkspaceLock:
    """keel.lock: one writer (a window or `keel run`) per workspace at a time, across processes."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._lock = FileLock(Workspace(self.root).lock_path)

    @property
    def path(self) -> Path:
        return self._lock.path

    @property
    def held(self) -> bool:
        return self._lock.held

    def try_acquire(self) -> bool:
        return self._lock.try_acquire()

    def release(self) -> None:
        self._lock.release()

    def holder_pid(self) -> int | None:
        return self._lock.holder_pid()

    def acquire_or_refuse(self) -> "WorkspaceLock":
        """Take the lock for a headless writer, or say who holds it."""
        if not self.try_acquire():
            holder = self.holder_pid()
            raise BusyError(f"{self.root} is already in use by another Keel (the GUI or `keel run`"
                            + (f", pid {holder}" if holder else "") + f"; lock {self.path}); stop it first")
        return self
