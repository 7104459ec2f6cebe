"""`backup DEST` and `restore SRC`: the whole workspace in one archive, and back.

A backup is consistent while the GUI or `run` keeps working: the registry is copied
with SQLite's online backup API first, then exactly the model and dataset files that
copy names (they are never overwritten once registered, so a later write cannot
change them), each hashed as it streams into the archive. Pending inbox files go in
too. Restore verifies every member of the archive before it writes anything.
"""

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.domain.entities import DatabaseSummary, DatasetFile, ModelFile
from app.core.domain.errors import BusyError, KeelError
from app.core.domain.upkeep import ArchiveMember, BackupMade, Restored
from app.core.services.dependencies import RewriteProductionManifest
from app.core.services.paths import check_output_path
from app.core.store import maintenance
from app.core.store.archive import ArchiveReader, ArchiveWriter, write_archive
from app.core.store.registry import LATEST_SCHEMA_VERSION, Registry
from app.core.store.workspace import FileLock, Workspace

log = logging.getLogger("keel.backup")

KIND = "backup"
REGISTRY_MEMBER = "registry.db"
BACKUP_SUFFIX = ".keel-backup"


def outside_workspace(root: Path, destination: str | os.PathLike, what: str = "the output") -> Path:
    """A path the user named for Keel to write: never inside the workspace at root (resolved through
    symlinks and `..`), never a folder."""
    path = check_output_path(root, destination, what)
    if path.resolve().is_dir():
        raise KeelError(f"{path}: is a directory; give a file name for {what}")
    return path


# ------------------------------------------------------------------ backup
def _tracked_files(models: list[ModelFile], data: list[DatasetFile]) -> Iterator[tuple[str, str | None]]:
    for row in models:
        if row.pruned_at:
            continue
        yield row.artifact_path, row.sha256
        yield str(Path(row.artifact_path).with_suffix(".reference.parquet")), None
        yield str(Path(row.artifact_path).with_suffix(".drift.npz")), None
    for dataset_file in data:
        yield dataset_file.path, dataset_file.file_sha256


def _inbox_files(root: Path, projects: list[str]) -> Iterator[str]:
    for name in projects:
        inbox = root / "projects" / name / "inbox"
        if not inbox.is_dir():
            continue
        for path in sorted(inbox.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                yield path.relative_to(root).as_posix()


def _add_workspace_file(writer: ArchiveWriter, root: Path, relative: str, warnings: list[str],
                        vanished_ok: bool = False) -> ArchiveMember | None:
    try:
        return writer.add_file(relative, root / relative)
    except FileNotFoundError:
        if not vanished_ok and not relative.endswith((".reference.parquet", ".drift.npz")):
            warnings.append(f"{relative} is missing from the workspace: not in the backup")
        return None


# ------------------------------------------------------------------ restore
def restore_over_damaged_registry(root: Path, source: str | os.PathLike, force: bool = False,
                                  clock: Clock = SYSTEM_CLOCK) -> Path:
    """The workspace's registry cannot be opened (damaged): with --force, put the backup's registry
    and files in place of the damaged ones (moved to quarantine/, never deleted). The caller then
    opens the workspace and calls restore_finished()."""
    source = Path(source).expanduser()
    with ArchiveReader(source, expected_kind=KIND) as reader:
        reader.verify()  # before anything is written
        if not force:
            raise KeelError(f"the registry of {root} cannot be opened (damaged); restoring replaces it: "
                            "add --force (the damaged files are kept in quarantine/)")
        lock = FileLock(root / "keel.lock")
        if not lock.try_acquire():
            raise BusyError(f"{root} is in use by the GUI or `keel run` (lock {lock.path}); close it before restoring")
        try:
            with tempfile.TemporaryDirectory(prefix=".restore-", dir=root) as staging:
                staged = Path(staging)
                for name in reader.names():
                    reader.extract(name, staged / name)
                _check_restorable(source, maintenance.database_summary(staged / REGISTRY_MEMBER))
                target = root / "quarantine" / f"replaced-{clock.local_stamp()}"
                target.mkdir(parents=True, exist_ok=True)
                for name in ("artifacts", "datasets", "projects", REGISTRY_MEMBER, f"{REGISTRY_MEMBER}-wal",
                             f"{REGISTRY_MEMBER}-shm"):
                    if (root / name).exists():
                        shutil.move(str(root / name), str(target / name))
                _move_files_in(staged, root)
                os.replace(staged / REGISTRY_MEMBER, root / REGISTRY_MEMBER)
        finally:
            lock.release()
    return target


def _check_restorable(source: Path, summary: DatabaseSummary) -> None:
    if not summary.intact:
        raise KeelError(f"{source.name}: member {REGISTRY_MEMBER} is not a sound SQLite database")
    if summary.schema_version > LATEST_SCHEMA_VERSION:
        raise KeelError(f"{source.name} holds registry schema v{summary.schema_version}, written by a newer Keel "
                        f"(this one knows up to v{LATEST_SCHEMA_VERSION}); upgrade Keel to restore it")


def _set_aside(root: Path, projects: list[str], clock: Clock) -> Path:
    """Move the replaced workspace's files into quarantine/ (restore --force deletes nothing)."""
    target = root / "quarantine" / f"replaced-{clock.local_stamp()}"
    target.mkdir(parents=True, exist_ok=True)
    for top in ("artifacts", "datasets", "projects"):
        if (root / top).exists():
            shutil.move(str(root / top), str(target / top))
    # the replaced registry, as a consistent single file
    maintenance.copy_database(root / REGISTRY_MEMBER, target / REGISTRY_MEMBER)
    return target


def _move_files_in(staged: Path, root: Path) -> None:
    for top in ("artifacts", "datasets", "projects"):
        source = staged / top
        if not source.exists():
            continue
        for path in sorted(source.rglob("*")):
            if path.is_file():
                destination = root / path.relative_to(staged)
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, destination)


class BackupService:
    """Backups of the whole workspace and restores from them (Keel.backup: `keel backup`, `keel restore`)."""

    def __init__(self, *, registry: Registry, workspace: Workspace, clock: Clock, rewrite_production_manifest: RewriteProductionManifest) -> None:
        self._registry = registry
        self._workspace = workspace
        self._clock = clock
        self._rewrite_production_manifest = rewrite_production_manifest

    def backup(self, destination: str | os.PathLike, by: str = "user",
               before_manifest: Callable[[ArchiveWriter], None] | None = None) -> BackupMade:
        destination = outside_workspace(self._workspace.root, destination, "the backup")
        destination.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        warnings: list[str] = []
        with tempfile.TemporaryDirectory(prefix=".keel-backup-", dir=destination.parent) as staging:
            database = Path(staging) / REGISTRY_MEMBER
            maintenance.copy_database(self._workspace.registry_path, database)
            snapshot = Registry(database, clock=self._clock)
            try:
                models, data = maintenance.model_files(snapshot), maintenance.dataset_files(snapshot)
                projects = maintenance.project_names(snapshot)
            finally:
                snapshot.close()
            meta = {"workspace": str(self._workspace.root), "schema_version": LATEST_SCHEMA_VERSION,
                    "projects": projects, "created_at": self._clock()}
            try:
                with write_archive(destination, KIND, meta, before_manifest=before_manifest, clock=self._clock) as writer:
                    writer.add_file(REGISTRY_MEMBER, database)
                    for relative, expected in _tracked_files(models, data):
                        entry = _add_workspace_file(writer, self._workspace.root, relative, warnings)
                        if entry and expected and entry.sha256 != expected:
                            warnings.append(f"{relative} does not match its recorded sha256: backed up as it is")
                    for relative in _inbox_files(self._workspace.root, projects):
                        _add_workspace_file(writer, self._workspace.root, relative, warnings, vanished_ok=True)
                    members = len(writer.members)
            except OSError as exc:
                raise KeelError(f"cannot write {destination}: {exc.strerror or exc}") from None
        size = destination.stat().st_size
        with self._registry.transaction():
            self._registry.add_event(None, "workspace_backed_up", f"workspace backed up to {destination}", by,
                                     {"path": str(destination), "projects": projects, "members": members, "size": size})
        return BackupMade(path=str(destination), projects=tuple(projects), members=members, size=size,
                          seconds=round(time.perf_counter() - started, 3), warnings=tuple(warnings))

    def restore(self, source: str | os.PathLike, force: bool = False, by: str = "user",
                holding_workspace_lock: bool = False) -> Restored:
        """Replace the workspace's registry and files with a backup's, verified member by member first.
        holding_workspace_lock: the caller (the window) holds keel.lock and has stopped its scheduler."""
        source = Path(source).expanduser()
        with ArchiveReader(source, expected_kind=KIND) as reader:
            reader.verify()  # before anything is written
            root = self._workspace.root
            lock = FileLock(self._workspace.lock_path)
            if not holding_workspace_lock and not lock.try_acquire():
                raise BusyError(f"{root} is in use by the GUI or `keel run` (lock {lock.path}); close it before restoring")
            try:
                current = maintenance.project_names(self._registry)
                if current and not force:
                    raise KeelError(f"the workspace {root} has projects ({', '.join(current)}); "
                                    "restoring replaces them: add --force (they are kept in quarantine/)")
                with tempfile.TemporaryDirectory(prefix=".restore-", dir=root) as staging:
                    staged = Path(staging)
                    for name in reader.names():
                        reader.extract(name, staged / name)
                    summary = maintenance.database_summary(staged / REGISTRY_MEMBER)
                    _check_restorable(source, summary)
                    set_aside = _set_aside(root, current, self._clock) if current else None
                    _move_files_in(staged, root)
                    Registry(staged / REGISTRY_MEMBER, clock=self._clock).close()  # brings an older backup up to this Keel's schema
                    maintenance.replace_database(self._registry, staged / REGISTRY_MEMBER)
            finally:
                lock.release()
        for name in summary.projects:
            self._rewrite_production_manifest(name)
        with self._registry.transaction():
            self._registry.add_event(None, "workspace_restored", f"workspace restored from {source}", by,
                                     {"path": str(source), "projects": list(summary.projects),
                                      "replaced": current, "set_aside": str(set_aside) if set_aside else None})
        return Restored(restored_from=str(source), projects=summary.projects, replaced=tuple(current),
                        set_aside=str(set_aside) if set_aside else None)

    def restore_finished(self, source: str | os.PathLike, set_aside: Path, by: str = "user") -> Restored:
        """After restore_over_damaged_registry: manifests from the restored registry, the audit event."""
        projects = maintenance.project_names(self._registry)
        for name in projects:
            self._rewrite_production_manifest(name)
        with self._registry.transaction():
            self._registry.add_event(None, "workspace_restored", f"workspace restored from {source} over a damaged "
                                     "registry", by, {"path": str(source), "projects": projects, "set_aside": str(set_aside)})
        return Restored(restored_from=str(source), projects=tuple(projects), replaced=None, set_aside=str(set_aside))
