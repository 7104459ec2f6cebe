"""The project inbox: files dropped into projects/<name>/inbox/ become dataset versions.

A sweep ingests every complete file (validated, cleaned, versioned) and moves it to
processed/; a file that fails validation goes to rejected/ with NAME.reason.txt
beside it, an audit event and an alert. Nothing is deleted: a name already taken in
processed/ or rejected/ gets a numbered suffix.

A file still being written is not read: hidden files and temporary names (.tmp,
.part, .partial, .crdownload, ~) are skipped — an atomic writer's temporary file is
one of those — and so is any file modified less than SETTLE_SECONDS ago; it is
picked up by a later sweep once it has been quiet that long.
"""

import logging
import os
import time
from pathlib import Path

from app.core.domain.errors import BusyError, KeelError
from app.core.fileio import write_text_atomic
from app.core.store.workspace import FileLock

log = logging.getLogger("keel.inbox")

SETTLE_SECONDS = 1.5
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~", ".reason.txt")
REJECTED_RULE = "inbox_rejected"


def folders(keel, name: str) -> tuple[Path, Path, Path]:
    inbox = keel.workspace.inbox_dir(name)
    processed, rejected = inbox / "processed", inbox / "rejected"
    for folder in (inbox, processed, rejected):
        folder.mkdir(parents=True, exist_ok=True)
    return inbox, processed, rejected


def ready_files(inbox: Path, settle_seconds: float = SETTLE_SECONDS, now: float | None = None) -> list[Path]:
    """Complete-looking files in arrival order (oldest first)."""
    now = time.time() if now is None else now
    ready = []
    for entry in os.scandir(inbox):
        if not entry.is_file(follow_symlinks=False) or entry.name.startswith("."):
            continue
        if entry.name.lower().endswith(TEMPORARY_SUFFIXES):
            continue
        modified = entry.stat(follow_symlinks=False).st_mtime
        if now - modified < settle_seconds:
            continue  # still being written, perhaps
        ready.append((modified, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(ready)]


def free_name(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, suffix = _split_name(name)
    number = 2
    while candidate.exists() or (folder / f"{candidate.name}.reason.txt").exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


def _split_name(name: str) -> tuple[str, str]:
    for double in (".csv.gz", ".tsv.gz", ".txt.gz"):
        if name.lower().endswith(double):
            return name[: -len(double)], name[-len(double):]
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if stem else (name, "")


def sweep(keel, name: str, by: str = "scheduler", settle_seconds: float = SETTLE_SECONDS,
          lock_timeout: float = 600.0) -> list[dict]:
    """Ingest every ready file of the project's inbox; returns one entry per file handled.
    One sweep of a project at a time, across processes (a lock beside the project locks)."""
    keel.project(name)  # an unknown project is refused before touching any folder
    lock = FileLock(keel.workspace.root / "locks" / f"{name}.inbox.lock")
    if not lock.acquire(timeout=lock_timeout):
        raise BusyError(f"the inbox of {name!r} is being swept by another process (lock {lock.path})")
    try:
        return _sweep(keel, name, by, settle_seconds)
    finally:
        lock.release()


def _sweep(keel, name: str, by: str, settle_seconds: float) -> list[dict]:
    inbox, processed, rejected = folders(keel, name)
    results = []
    for path in ready_files(inbox, settle_seconds):
        try:
            ingested = keel.ingest(name, path, by=by)
        except BusyError:
            log.info("inbox %s: project busy; %s left for the next sweep", name, path.name)
            break
        except Exception as exc:  # noqa: BLE001 - every failure of a dropped file is reported the same way
            if _workspace_trouble(exc):  # the registry or the disk failed, not the file: never reject it for that
                log.warning("inbox %s: %s left for the next sweep: %s: %s", name, path.name, type(exc).__name__, exc)
                break
            if not path.exists():
                continue  # taken away while we looked: nothing to ingest, nothing to move
            if not isinstance(exc, KeelError):
                log.exception("inbox %s: unexpected failure on %s", name, path.name)
            results.append(reject(keel, name, path, rejected, exc, by))
            continue
        destination = free_name(processed, path.name)
        os.replace(path, destination)
        status = "duplicate" if ingested.get("duplicate_of") else "processed"
        results.append({"file": path.name, "status": status, "moved_to": str(destination),
                        "dataset_version": ingested["dataset_version"], "rows": ingested["rows"],
                        "labelled": ingested["labelled"], "warnings": ingested.get("warnings", []),
                        "duplicate_of": ingested.get("duplicate_of")})
    return results


def _workspace_trouble(exc: Exception) -> bool:
    """A locked or failing registry, a full or read-only disk: a passing problem of the workspace."""
    import errno
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def reject(keel, name: str, path: Path, rejected: Path, exc: Exception, by: str) -> dict:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, KeelError):
        reason = f"internal error while reading it: {type(exc).__name__}: {reason}"
    destination = free_name(rejected, path.name)
    os.replace(path, destination)
    write_text_atomic(destination.with_name(destination.name + ".reason.txt"), reason + "\n")
    project = keel.project(name)
    message = f"inbox file {path.name} rejected: {reason}"
    with keel.registry.transaction():
        keel.registry.add_event(project, "inbox_rejected", message, by,
                                {"file": path.name, "moved_to": str(destination), "reason": reason})
        already_open = any(a["rule"] == REJECTED_RULE for a in keel.registry.open_alerts(project["id"]))
        if not already_open:  # one open alert for rejected files; each file is in the audit log
            keel.registry.insert_alert(project_id=project["id"], rule=REJECTED_RULE, severity="warning",
                                       message=message, details={"file": path.name, "reason": reason})
    return {"file": path.name, "status": "rejected", "moved_to": str(destination), "reason": reason,
            "dataset_version": None, "rows": 0, "labelled": False, "warnings": [], "duplicate_of": None}
