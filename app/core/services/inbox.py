"""The project inbox: files dropped into projects/<name>/inbox/ become dataset versions.

A sweep ingests every complete file (validated, cleaned, versioned) and moves it to
processed/; a file that fails validation goes to rejected/ with NAME.reason.txt
beside it, an audit event and an alert. Nothing is deleted: a name already taken in
processed/ or rejected/ gets a numbered suffix.

A file still being written is never read. Hidden files and temporary names (.tmp,
.part, .partial, .crdownload, ~) are skipped: a writer that writes to such a name and
then renames it (the safe way, README) is never seen half-done. Any other file is
taken only when the sweeps have seen its size and modification time unchanged for
QUIET_SECONDS (the sightings are recorded in projects/<name>/inbox.sightings.json, so
`monitor --once`, `run` and the window count together) and it looks complete: a text
file ends with a line break, a Parquet file with its closing magic, a gzip file
decompresses to its end. A file that does not look complete is taken only after
UNTERMINATED_SECONDS unchanged. Until then it is left alone, untouched.

The sweep ingests a private copy of the file's bytes (inbox/.taking/) and that copy
becomes processed/NAME: what is in processed/ is exactly what was ingested, once. The
original is then removed if it still holds exactly those bytes (hashes compared); if
a writer changed it meanwhile, it goes to rejected/ with a reason saying which part
was ingested, never silently.

A symbolic link is followed when it leads to a regular file this user can read outside
the workspace (the link is then removed, its target left alone); any other link, and
any special file (a pipe, a socket, a device), goes to rejected/ with a reason.
"""

import gzip
import hashlib
import json
import logging
import os
import shutil
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

from app.core.domain.alert_evidence import RejectedFileEvidence
from app.core.domain.clock import Clock
from app.core.domain.errors import BusyError, KeelError, is_disk_full
from app.core.domain.results import IngestResult, SweptFile
from app.core.fileio import sha256_file, write_text_atomic
from app.core.services.dependencies import Ingest, Progress
from app.core.services.paths import is_inside
from app.core.store.registry import Registry
from app.core.store.workspace import FileLock, Workspace

log = logging.getLogger("keel.inbox")

QUIET_SECONDS = 2.0
UNTERMINATED_SECONDS = 60.0
QUIET_ENV = "KEEL_INBOX_QUIET_SECONDS"
UNTERMINATED_ENV = "KEEL_INBOX_UNTERMINATED_SECONDS"
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~", ".reason.txt")
REJECTED_RULE = "inbox_rejected"
SIGHTINGS_FILE = "inbox.sightings.json"
TAKING_DIR = ".taking"


@dataclass(frozen=True)
class Rules:
    """When a file counts as complete: unchanged this long as seen by the sweeps (and for one
    that does not look complete, this much longer)."""

    quiet_seconds: float = QUIET_SECONDS
    unterminated_seconds: float = UNTERMINATED_SECONDS

    @classmethod
    def from_environment(cls) -> "Rules":
        return cls(_seconds_from_env(QUIET_ENV, QUIET_SECONDS), _seconds_from_env(UNTERMINATED_ENV, UNTERMINATED_SECONDS))


def _seconds_from_env(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise KeelError(f"${variable} must be a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise KeelError(f"${variable} must be 0 or more seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class Entry:
    """One name in the inbox: a regular file, or a symlink followed to one (source is what is read)."""

    path: Path
    source: Path
    size: int
    mtime_ns: int
    problem: str | None = None  # set: the entry is rejected with this reason

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def signature(self) -> list[int]:
        return [self.size, self.mtime_ns]


def is_candidate_name(name: str) -> bool:
    return not name.startswith(".") and not name.lower().endswith(TEMPORARY_SUFFIXES)


def scan(inbox: Path, workspace_root: Path) -> list[Entry]:
    """Every candidate in the inbox, oldest modification first."""
    found = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            if not is_candidate_name(entry.name) or entry.is_dir(follow_symlinks=False):
                continue
            try:
                found.append(_entry(Path(entry.path), entry.stat(follow_symlinks=False), workspace_root))
            except FileNotFoundError:
                continue  # taken away while we looked
    return sorted(found, key=lambda e: (e.mtime_ns, e.name))


def _entry(path: Path, own: os.stat_result, workspace_root: Path) -> Entry:
    if stat.S_ISREG(own.st_mode):
        return Entry(path, path, own.st_size, own.st_mtime_ns)
    if not stat.S_ISLNK(own.st_mode):
        return Entry(path, path, own.st_size, own.st_mtime_ns, f"not a regular file ({_kind(own.st_mode)})")
    target = Path(os.path.realpath(path))
    try:
        followed = os.stat(path)
    except OSError:
        return Entry(path, path, 0, own.st_mtime_ns, f"a symbolic link to {target}, which does not exist")
    problem = None
    if not stat.S_ISREG(followed.st_mode):
        problem = f"a symbolic link to {target}, which is not a regular file ({_kind(followed.st_mode)})"
    elif is_inside(target, workspace_root):
        problem = f"a symbolic link to {target}, inside the workspace: Keel does not ingest its own files"
    elif not os.access(target, os.R_OK):
        problem = f"a symbolic link to {target}, which this user cannot read"
    return Entry(path, target, followed.st_size, followed.st_mtime_ns, problem)


def _kind(mode: int) -> str:
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return word
    return "a special file"


# --------------------------------------------------------------------------- sightings
def _read_sightings(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data["files"] if isinstance(data.get("files"), dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def looks_complete(path: Path) -> bool:
    """A text file ends with a line break; Parquet ends with its magic; gzip decompresses to its
    end (and its text ends with a line break)."""
    lower = path.name.lower()
    try:
        if lower.endswith(".parquet") or lower.endswith(".pq"):
            return _tail(path, 4) == b"PAR1"
        if lower.endswith(".gz"):
            return _gzip_complete(path)
        return _tail(path, 1) in (b"\n", b"\r")
    except OSError:
        return False


def _tail(path: Path, count: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - count))
        return handle.read(count)


def _gzip_complete(path: Path) -> bool:
    last = b""
    try:
        with gzip.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                last = block[-1:]
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return False
    return last in (b"\n", b"\r")


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


class _LeaveForLater(Exception):
    """The project or the workspace cannot take a file now (busy, disk full): stop this sweep."""


def _copy_and_hash(source: Path, copy: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reader, open(copy, "wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
            size += len(block)
    return digest.hexdigest(), size


def _workspace_trouble(exc: Exception) -> bool:
    """A locked or failing registry, a full or read-only disk: a passing problem of the workspace."""
    import errno
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError) or is_disk_full(exc):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EIO)


class InboxService:
    """The project inboxes of one workspace (Keel.inbox): a sweep ingests each complete file through
    the lifecycle's ingest, moves it to processed/ or rejected/ (with a reason), and remembers what it
    saw (the sightings) so that a file is taken once it has stayed unchanged."""

    def __init__(self, *, registry: Registry, workspace: Workspace, clock: Clock, ingest: Ingest) -> None:
        self._registry = registry
        self._workspace = workspace
        self._clock = clock
        self._ingest = ingest

    def sweep(self, name: str, by: str = "scheduler", rules: Rules | None = None, lock_timeout: float = 600.0,
              now: float | None = None, progress: Progress | None = None) -> list[SweptFile]:
        """Ingest every complete file of the project's inbox; returns one entry per file handled.
        One sweep of a project at a time, across processes (a lock beside the project locks).
        progress is accepted for the window's child-process jobs; a sweep reports none."""
        self._registry.project(name)  # an unknown project is refused before touching any folder
        rules = rules or Rules.from_environment()
        lock = FileLock(self._workspace.project_lock_path(name, "inbox"))
        if not lock.acquire(timeout=lock_timeout):
            raise BusyError(f"the inbox of {name!r} is being swept by another process (lock {lock.path})")
        try:
            return self._sweep(name, by, rules, self._clock.seconds() if now is None else now)
        finally:
            lock.release()

    def has_waiting_files(self, name: str) -> bool:
        """Whether the project's inbox holds anything a sweep would look at (cheap: one scandir)."""
        try:
            with os.scandir(self._workspace.inbox_dir(name)) as entries:
                return any(is_candidate_name(e.name) and not e.is_dir(follow_symlinks=False) for e in entries)
        except OSError:
            return False

    def record_sightings(self, name: str, entries: list[Entry] | None = None, now: float | None = None,
                         only: set[str] | None = None) -> dict:
        """Record what a sweep sees at `now`: per file name its size and mtime, and since when they
        have been so (only: record these names, keep the others' records as they are). Returns
        name -> seconds unchanged as seen by the sweeps."""
        now = self._clock.seconds() if now is None else now
        if entries is None:
            entries = scan(self._folders(name)[0], self._workspace.root)
        path = self._sightings_path(name)
        before = _read_sightings(path)
        after, quiet = {}, {}
        for entry in entries:
            seen = before.get(entry.name)
            if only is not None and entry.name not in only:
                if seen is not None:
                    after[entry.name] = seen
                continue
            if isinstance(seen, dict) and seen.get("signature") == entry.signature:
                since = min(float(seen.get("since", now)), now)
            else:
                since = now
            after[entry.name] = {"signature": entry.signature, "since": since}
            quiet[entry.name] = now - since
        if after != before:
            write_text_atomic(path, json.dumps({"files": after}, indent=1))
        return quiet

    def _sweep(self, name: str, by: str, rules: Rules, now: float) -> list[SweptFile]:
        inbox, processed, rejected = self._folders(name)
        taking = inbox / TAKING_DIR
        shutil.rmtree(taking, ignore_errors=True)  # copies left by a sweep that was killed: their originals are still here
        entries = scan(inbox, self._workspace.root)
        quiet = self.record_sightings(name, entries, now)
        results = []
        for entry in entries:
            if entry.problem:
                results.append(self._reject(name, entry.path, rejected, KeelError(entry.problem), by))
                continue
            if quiet[entry.name] < rules.quiet_seconds:
                continue  # not seen unchanged for long enough: perhaps still being written
            if quiet[entry.name] < rules.unterminated_seconds and not looks_complete(entry.source):
                continue  # unchanged, but cut short (no final line break): a writer may be pausing
            try:
                outcome = self._take(name, entry, taking, processed, rejected, by)
            except _LeaveForLater:
                break
            if outcome is not None:
                results.append(outcome)
        shutil.rmtree(taking, ignore_errors=True)
        return results

    def _take(self, name: str, entry: Entry, taking: Path, processed: Path, rejected: Path, by: str) -> SweptFile | None:
        taking.mkdir(exist_ok=True)
        copy = taking / entry.name
        try:
            digest, size = _copy_and_hash(entry.source, copy)
        except FileNotFoundError:
            return None  # taken away while we looked
        except OSError as exc:
            if is_disk_full(exc):
                raise _LeaveForLater from None
            return self._reject(name, entry.path, rejected, KeelError(f"cannot be read: {exc.strerror or exc}"), by)
        if size != entry.size:
            copy.unlink(missing_ok=True)
            return None  # it changed since the sightings: a later sweep sees it again
        try:
            ingested = self._ingest(name, copy, by=by)
        except BusyError:
            log.info("inbox %s: project busy; %s left for the next sweep", name, entry.name)
            raise _LeaveForLater from None
        except Exception as exc:  # noqa: BLE001 - every failure of a dropped file is reported the same way
            if _workspace_trouble(exc):  # the registry or the disk failed, not the file: never reject it for that
                log.warning("inbox %s: %s left for the next sweep: %s: %s", name, entry.name, type(exc).__name__, exc)
                raise _LeaveForLater from None
            if not isinstance(exc, KeelError):
                log.exception("inbox %s: unexpected failure on %s", name, entry.name)
            return self._reject(name, entry.path, rejected, exc, by)
        destination = free_name(processed, entry.name)
        os.replace(copy, destination)  # processed/ holds exactly the bytes that were ingested
        self._retire_original(name, entry, digest, destination, rejected, ingested, by)
        return SweptFile(file=entry.name, status="duplicate" if ingested.duplicate_of else "processed",
                         moved_to=str(destination), dataset_version=ingested.dataset_version, rows=ingested.rows,
                         labelled=ingested.labelled, warnings=ingested.warnings, duplicate_of=ingested.duplicate_of,
                         sha256=digest)

    def _retire_original(self, name: str, entry: Entry, digest: str, ingested_copy: Path, rejected: Path,
                         ingested: IngestResult, by: str) -> None:
        """Remove the dropped file (a link: the link only) if it still holds exactly what was ingested."""
        if entry.path != entry.source:
            entry.path.unlink(missing_ok=True)
            return
        try:
            unchanged = sha256_file(entry.path) == digest
        except FileNotFoundError:
            return
        if unchanged:
            entry.path.unlink(missing_ok=True)
            return
        version = ingested.duplicate_of or ingested.dataset_version
        self._reject(name, entry.path, rejected, KeelError(
            f"changed while it was being ingested: its first {entry.size} bytes became dataset v{version} "
            f"({ingested_copy.name} in processed/); this is the whole file as it is now, not ingested"), by)

    def _reject(self, name: str, path: Path, rejected: Path, exc: Exception, by: str) -> SweptFile:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, KeelError):
            reason = f"internal error while reading it: {type(exc).__name__}: {reason}"
        destination = free_name(rejected, path.name)
        os.replace(path, destination)
        write_text_atomic(destination.with_name(destination.name + ".reason.txt"), reason + "\n")
        project = self._registry.project(name)
        message = f"inbox file {path.name} rejected: {reason}"
        with self._registry.transaction():
            self._registry.add_event(project, "inbox_rejected", message, by,
                                     {"file": path.name, "moved_to": str(destination), "reason": reason})
            already_open = any(a.rule == REJECTED_RULE for a in self._registry.open_alerts(project.id))
            if not already_open:  # one open alert for rejected files; each file is in the audit log
                self._registry.insert_alert(project_id=project.id, rule=REJECTED_RULE, severity="warning",
                                            message=message, details=RejectedFileEvidence(file=path.name, reason=reason))
        return SweptFile(file=path.name, status="rejected", moved_to=str(destination), dataset_version=None, rows=0,
                         labelled=False, warnings=(), duplicate_of=None, reason=reason)

    def _folders(self, name: str) -> tuple[Path, Path, Path]:
        inbox = self._workspace.inbox_dir(name)
        processed, rejected = inbox / "processed", inbox / "rejected"
        for folder in (inbox, processed, rejected):
            folder.mkdir(parents=True, exist_ok=True)
        return inbox, processed, rejected

    def _sightings_path(self, name: str) -> Path:
        return self._workspace.project_dir(name) / SIGHTINGS_FILE
