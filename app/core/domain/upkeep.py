"""What keeping a workspace whole hands back, as typed values: verify's findings and repairs, backups
and restores, the backup schedule, retention and what it pruned, the scheduler's upkeep, project
bundles, the demo project, and an archive's member entries. Frozen (they cross a thread or the
window's child process as they are); to_json() gives the document `--json` prints, under the keys
docs/cli.md promises, in the order they have always come. The settings and files Keel stores as JSON
(the backup schedule, the retention rules, the demo stream's state, an archive's manifest entry) are
read back with from_json() and written with to_json() in the stored shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_BACKUPS_KEPT = 7


# ------------------------------------------------------------------ archives
@dataclass(frozen=True)
class ArchiveMember:
    """One member of a Keel archive (a backup or a bundle) as its manifest lists it."""

    name: str  # the member's path inside the archive
    size: int  # bytes
    sha256: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArchiveMember:
        return cls(name=data["name"], size=data["size"], sha256=data["sha256"])

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


# ------------------------------------------------------------------ verify
@dataclass(frozen=True)
class Finding:
    """One thing verify found wrong (or only worth reporting) in the workspace."""

    check: str  # database | foreign_keys | artifact | dataset | production | temporary | orphan
    path: str | None
    message: str
    error: bool  # False: reported only (a young file a writer may still be working on)
    repair: str | None  # what --repair does: remove | quarantine | rewrite | record | None (cannot)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "path": self.path, "message": self.message, "error": self.error,
                "repair": self.repair}


@dataclass(frozen=True)
class Repair:
    """What --repair did to one file: removed, quarantined, rewrote or recorded it."""

    path: str
    action: str  # remove | quarantine | rewrite | record
    check: str  # the finding's check

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action, "check": self.check}


@dataclass(frozen=True)
class FilesChecked:
    """How much of the workspace verify looked at."""

    projects: int
    model_files: int
    dataset_files: int
    hashed: bool  # False: presence only (--quick)

    def to_json(self) -> dict[str, Any]:
        return {"projects": self.projects, "model_files": self.model_files, "dataset_files": self.dataset_files,
                "hashed": self.hashed}


@dataclass(frozen=True)
class VerifyReport:
    """`verify`: what was checked, what is wrong (after any repair), and what was repaired."""

    quick: bool
    workspace_root: str  # the folder checked
    checked: FilesChecked
    problems: tuple[Finding, ...]
    repaired: tuple[Repair, ...]

    @property
    def healthy(self) -> bool:
        """No finding is an error (notes, such as a young temporary file, are no error)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.problems if finding.error)

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "quick": self.quick, "workspace": self.workspace_root,
                "checked": self.checked.to_json(), "problems": [finding.to_json() for finding in self.problems],
                "repaired": [repair.to_json() for repair in self.repaired]}


# ------------------------------------------------------------------ backup and restore
@dataclass(frozen=True)
class BackupMade:
    """A backup written: where, of which projects, how many members and bytes, how long it took."""

    path: str
    projects: tuple[str, ...]
    members: int
    size: int  # bytes
    seconds: float
    warnings: tuple[str, ...]  # files missing from the workspace or not matching their sha256

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "projects": list(self.projects), "members": self.members, "size": self.size,
                "seconds": self.seconds, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class ScheduledBackupMade:
    """A scheduled backup, and the oldest of Keel's scheduled backup files it removed beyond `keep`."""

    backup: BackupMade
    removed_old_backups: tuple[str, ...]  # file names in the backup folder

    def to_json(self) -> dict[str, Any]:
        return {**self.backup.to_json(), "removed_old_backups": list(self.removed_old_backups)}


@dataclass(frozen=True)
class Restored:
    """A workspace restored from a backup: the projects it holds now and what was set aside."""

    restored_from: str
    projects: tuple[str, ...]
    replaced: tuple[str, ...] | None  # the projects it had before; None: its registry was damaged
    set_aside: str | None  # the quarantine folder of the replaced files; None: nothing replaced

    def to_json(self) -> dict[str, Any]:
        return {"restored_from": self.restored_from, "projects": list(self.projects),
                "replaced": None if self.replaced is None else list(self.replaced), "set_aside": self.set_aside}


# ------------------------------------------------------------------ the backup schedule
@dataclass(frozen=True)
class BackupScheduleSetting:
    """The scheduled backup as the workspace settings store it (the `scheduled_backup` setting)."""

    every: str | None = None  # an interval like 'every 1d'; None: off
    keep: int = DEFAULT_BACKUPS_KEPT
    folder: str | None = None  # None: <workspace>-backups beside the workspace

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> BackupScheduleSetting:
        data = data or {}
        return cls(every=data.get("every"), keep=data.get("keep", DEFAULT_BACKUPS_KEPT), folder=data.get("folder"))

    def to_json(self) -> dict[str, Any]:
        return {"every": self.every, "keep": self.keep, "folder": self.folder}

    def describe(self) -> str:
        if not self.every:
            return "off"
        return f"{self.every}, keep {self.keep}" + (f", in {self.folder}" if self.folder else "")


@dataclass(frozen=True)
class BackupSchedule:
    """`backup --schedule`: the scheduled backup, its folder resolved, and when the last one was made."""

    every: str | None
    keep: int
    folder: str
    last_backup_at: str | None  # ISO 8601

    @property
    def enabled(self) -> bool:
        return bool(self.every)

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "every": self.every, "keep": self.keep, "folder": self.folder,
                "last_backup_at": self.last_backup_at}


# ------------------------------------------------------------------ retention
@dataclass(frozen=True)
class RetentionRules:
    """The retention rules as the workspace settings store them (the `retention` setting); None: off."""

    keep_archived: int | None = None  # archived versions kept per project (older ones' files removed)
    inbox_days: float | None = None  # processed/ and rejected/ inbox files older than this are removed

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetentionRules:
        data = data or {}
        return cls(keep_archived=data.get("keep_archived"), inbox_days=data.get("inbox_days"))

    def to_json(self) -> dict[str, Any]:
        return {"keep_archived": self.keep_archived, "inbox_days": self.inbox_days}


@dataclass(frozen=True)
class RetentionSettings:
    """`retention`: the rules, and when they were last applied."""

    keep_archived: int | None
    inbox_days: float | None
    last_applied_at: str | None  # ISO 8601

    @property
    def any_rule(self) -> bool:
        return self.keep_archived is not None or self.inbox_days is not None

    def to_json(self) -> dict[str, Any]:
        return {"keep_archived": self.keep_archived, "inbox_days": self.inbox_days,
                "last_applied_at": self.last_applied_at}


@dataclass(frozen=True)
class PrunedVersion:
    """An archived model version whose file retention removed (or would remove: a dry run)."""

    project: str
    version: int
    artifact_path: str

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "version": self.version, "artifact_path": self.artifact_path}


@dataclass(frozen=True)
class PruneResult:
    """`retention --apply`: the rules applied, and what they removed (or would remove: dry_run)."""

    dry_run: bool
    keep_archived: int | None
    inbox_days: float | None
    pruned_versions: tuple[PrunedVersion, ...]
    removed_inbox_files: tuple[str, ...]  # relative to the workspace root

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "keep_archived": self.keep_archived, "inbox_days": self.inbox_days,
                "pruned_versions": [version.to_json() for version in self.pruned_versions],
                "removed_inbox_files": list(self.removed_inbox_files)}


@dataclass(frozen=True)
class UpkeepDone:
    """What one round of the scheduler's upkeep did: a due scheduled backup, the daily retention run,
    or a failure (logged, never raised)."""

    backup: ScheduledBackupMade | None = None
    retention: PruneResult | None = None
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        done: dict[str, Any] = {}
        if self.backup is not None:
            done["backup"] = self.backup.to_json()
        if self.retention is not None:
            done["retention"] = self.retention.to_json()
        if self.failed:
            done["failed"] = True
        return done


# ------------------------------------------------------------------ bundles
@dataclass(frozen=True)
class BundleExported:
    """`bundle export`: a project written into one .keel file."""

    project: str
    path: str
    members: int
    size: int  # bytes
    model_versions: int
    dataset_versions: int

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "path": self.path, "members": self.members, "size": self.size,
                "model_versions": self.model_versions, "dataset_versions": self.dataset_versions}


@dataclass(frozen=True)
class BundleImported:
    """`bundle import`: the project of a .keel file added to the workspace (under `project`)."""

    project: str
    imported_from: str
    original_name: str  # the name it was exported under
    model_versions: int
    dataset_versions: int

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "imported_from": self.imported_from, "original_name": self.original_name,
                "model_versions": self.model_versions, "dataset_versions": self.dataset_versions}


# ------------------------------------------------------------------ the demo
@dataclass(frozen=True)
class DemoCreated:
    """`demo`: the demo project built, its first version in production with these hold-out metrics
    (a mapping of metric name to value)."""

    project: str
    version: int
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "version": self.version, "metrics": self.metrics}


@dataclass(frozen=True)
class DemoStreamState:
    """How far the demo stream has played for the demo project created at project_created_at (the
    state file keeps it; a new demo project starts a new stream)."""

    next: int  # index of the next batch
    batches: int  # the stream's length
    project_created_at: str | None  # None: there is no demo project

    @property
    def finished(self) -> bool:
        return self.next >= self.batches

    def to_json(self) -> dict[str, Any]:
        return {"next": self.next, "project_created_at": self.project_created_at, "batches": self.batches}
