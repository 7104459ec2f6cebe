"""Errors the core raises. Each front end decides what one means to its user (the CLI: app/frontends/exit_codes.py)."""

import errno
import sqlite3


class KeelError(Exception):
    """Something the user can fix: a bad file, argument, unknown project or version."""


class NotFoundError(KeelError):
    """An unknown project, version or file."""


class ValidationError(KeelError):
    """Input data that does not fit: says what, where (file, column, row)."""


class IntegrityError(KeelError):
    """A stored artifact failed its integrity or trust check. Not user-fixable."""


class Cancelled(KeelError):
    """Work stopped on request; nothing was written."""


class BusyError(KeelError):
    """Another process holds the lock this work needs."""


def is_disk_full(exc: BaseException) -> bool:
    """An OSError for a full disk or an exhausted quota, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False
