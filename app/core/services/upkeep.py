"""Workspace upkeep: scheduled backups (keep the last N) and retention (prune what grows
without bound). Both are workspace settings; the window and `keel run` call run_due()
about once a minute.

Retention never touches the production version, a version any deployment or alias
names, or a dataset version (training lineage points at those): it removes the files
of archived model versions beyond the newest N of each project (the registry row stays,
marked pruned, so the audit log and monitoring history still name it), and files in
the inbox's processed/ and rejected/ folders older than D days.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.domain.clock import Clock
from app.core.domain.errors import KeelError
from app.core.domain.settings import parse_schedule
from app.core.domain.upkeep import (
    BackupSchedule,
    PrunedVersion,
    PruneResult,
    RetentionSettings,
    ScheduledBackupMade,
    UpkeepDone,
)
from app.core.store import maintenance
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace, project_lock

if TYPE_CHECKING:
    from app.core.services.backup import BackupService

log = logging.getLogger("keel.upkeep")

RETENTION_PERIOD = timedelta(days=1)
SCHEDULED_NAME = re.compile(r"^keel-\d{8}T\d{6}Z(-\d+)?\.keel-backup$")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _keep_newest(folder: Path, keep: int) -> tuple[str, ...]:
    """Only Keel's own scheduled backup files are ever removed, oldest first."""
    ours = sorted((p for p in folder.iterdir() if p.is_file() and SCHEDULED_NAME.match(p.name)),
                  key=lambda p: (p.stat().st_mtime, p.name))
    removed = []
    for path in ours[:-keep] if len(ours) > keep else []:
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return tuple(removed)


def backup_files(folder: str | os.PathLike) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if SCHEDULED_NAME.match(p.name))


class UpkeepService:
    """Workspace upkeep (Keel.upkeep): scheduled backups, made through the backup service, and retention."""

    def __init__(self, *, registry: Registry, workspace: Workspace, clock: Clock, backup: BackupService) -> None:
        self._registry = registry
        self._workspace = workspace
        self._clock = clock
        self._backup = backup

    def _default_backup_folder(self) -> Path:
        root = self._workspace.root
        return root.parent / f"{root.name}-backups"

    def backup_schedule(self) -> BackupSchedule:
        stored = maintenance.scheduled_backup(self._registry)
        return BackupSchedule(every=stored.every, keep=stored.keep,
                              folder=stored.folder or str(self._default_backup_folder()),
                              last_backup_at=maintenance.last_scheduled_backup_at(self._registry))

    def set_backup_schedule(self, every: str | None = None, keep: int | None = None, folder: str | None = None,
                            off: bool = False) -> BackupSchedule:
        from app.core.services.backup import outside_workspace

        stored = maintenance.scheduled_backup(self._registry)
        if every is not None:
            kind, _ = parse_schedule(every)
            if kind != "interval":
                raise KeelError(f"--schedule for backups takes an interval like 'every 1d', got {every!r}")
            stored = replace(stored, every=every)
        if off:
            stored = replace(stored, every=None)
        if keep is not None:
            if keep < 1:
                raise KeelError(f"--keep must be at least 1, got {keep}")
            stored = replace(stored, keep=keep)
        if folder is not None:
            resolved = Path(folder).expanduser().resolve()
            outside_workspace(self._workspace.root, resolved / "probe", "the backup folder")
            stored = replace(stored, folder=str(resolved))
        with self._registry.transaction():
            maintenance.set_scheduled_backup(self._registry, stored)
            self._registry.add_event(None, "settings_changed", "scheduled backup: " + stored.describe(), "user",
                                     {"scheduled_backup": stored.to_json()})
        return self.backup_schedule()

    def retention(self) -> RetentionSettings:
        stored = maintenance.retention_rules(self._registry)
        return RetentionSettings(keep_archived=stored.keep_archived, inbox_days=stored.inbox_days,
                                 last_applied_at=maintenance.last_retention_at(self._registry))

    def set_retention(self, keep_archived: int | None | str = "unchanged",
                      inbox_days: float | None | str = "unchanged") -> RetentionSettings:
        """None turns a rule off; "unchanged" leaves it."""
        stored = maintenance.retention_rules(self._registry)
        if not isinstance(keep_archived, str):
            if isinstance(keep_archived, int) and keep_archived < 0:
                raise KeelError(f"--keep-archived must be 0 or more, got {keep_archived}")
            stored = replace(stored, keep_archived=keep_archived)
        if not isinstance(inbox_days, str):
            if isinstance(inbox_days, (int, float)) and inbox_days <= 0:
                raise KeelError(f"--inbox-days must be more than 0, got {inbox_days}")
            stored = replace(stored, inbox_days=inbox_days)
        with self._registry.transaction():
            maintenance.set_retention_rules(self._registry, stored)
            self._registry.add_event(None, "settings_changed",
                                     f"retention: keep {stored.keep_archived} archived version(s), inbox files "
                                     f"{stored.inbox_days} day(s)", "user", {"retention": stored.to_json()})
        return self.retention()

    def prune(self, keep_archived: int | None = None, inbox_days: float | None = None, dry_run: bool = False,
              by: str = "user", now: float | None = None) -> PruneResult:
        """Apply the retention rules given (default: the workspace's settings)."""
        settings = self.retention()
        keep_archived = settings.keep_archived if keep_archived is None else keep_archived
        inbox_days = settings.inbox_days if inbox_days is None else inbox_days
        pruned = () if keep_archived is None else self._prune_versions(keep_archived, dry_run, by)
        removed = () if inbox_days is None else self._prune_inbox(inbox_days, dry_run, now)
        if not dry_run:
            with self._registry.transaction():
                maintenance.set_last_retention_at(self._registry, self._clock())
        return PruneResult(dry_run=dry_run, keep_archived=keep_archived, inbox_days=inbox_days,
                           pruned_versions=pruned, removed_inbox_files=removed)

    def _prune_versions(self, keep_archived: int, dry_run: bool, by: str) -> tuple[PrunedVersion, ...]:
        pruned = []
        for row in maintenance.prunable_model_versions(self._registry, keep_archived):
            entry = PrunedVersion(project=row.project, version=row.version, artifact_path=row.artifact_path)
            if dry_run:
                pruned.append(entry)
                continue
            with project_lock(self._workspace, row.project):
                # again under the lock: a deploy or an alias may have claimed it meanwhile
                still = {r.id for r in maintenance.prunable_model_versions(self._registry, keep_archived)}
                if row.id not in still:
                    continue
                project = self._registry.project(row.project)
                with self._registry.transaction():
                    maintenance.mark_pruned(self._registry, row.id)
                    self._registry.add_event(project, "model_pruned",
                                             f"v{row.version} pruned by retention (archived; its file was removed)", by,
                                             {"version": row.version, "keep_archived": keep_archived})
                artifact = self._workspace.root / row.artifact_path
                for path in (artifact, artifact.with_suffix(".reference.parquet"), artifact.with_suffix(".drift.npz")):
                    path.unlink(missing_ok=True)
            pruned.append(entry)
        return tuple(pruned)

    def _prune_inbox(self, inbox_days: float, dry_run: bool, now: float | None) -> tuple[str, ...]:
        cutoff = (self._clock.seconds() if now is None else now) - inbox_days * 86400
        removed = []
        for name in maintenance.project_names(self._registry):
            inbox = self._workspace.inbox_dir(name)
            for folder in (inbox / "processed", inbox / "rejected"):
                if not folder.is_dir():
                    continue
                for path in sorted(folder.iterdir()):
                    if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                        removed.append(path.relative_to(self._workspace.root).as_posix())
                        if not dry_run:
                            path.unlink(missing_ok=True)
        return tuple(removed)

    def scheduled_backup(self, now: datetime | None = None) -> ScheduledBackupMade:
        """One scheduled backup into the configured folder, then the oldest beyond `keep` removed."""
        schedule = self.backup_schedule()
        folder = Path(schedule.folder)
        folder.mkdir(parents=True, exist_ok=True)
        now = now or self._clock.moment()
        destination = folder / f"keel-{now.strftime('%Y%m%dT%H%M%SZ')}.keel-backup"
        number = 2
        while destination.exists():
            destination = folder / f"keel-{now.strftime('%Y%m%dT%H%M%SZ')}-{number}.keel-backup"
            number += 1
        made = self._backup.backup(destination, by="scheduler")
        with self._registry.transaction():
            maintenance.set_last_scheduled_backup_at(self._registry, now.isoformat())
        return ScheduledBackupMade(backup=made, removed_old_backups=_keep_newest(folder, schedule.keep))

    def run_due(self, now: datetime | None = None) -> UpkeepDone:
        """The upkeep the window and `keel run` do about once a minute: a due scheduled backup,
        and the retention rules once a day when any is set. Failures are logged, never raised."""
        now = now or self._clock.moment()
        backup: ScheduledBackupMade | None = None
        retention: PruneResult | None = None
        try:
            schedule = self.backup_schedule()
            if schedule.every:
                _, seconds = parse_schedule(schedule.every)
                last = _parse_time(schedule.last_backup_at)
                if last is None or now - last >= timedelta(seconds=int(seconds)):
                    backup = self.scheduled_backup(now)
            rules = self.retention()
            if rules.any_rule:
                last = _parse_time(rules.last_applied_at)
                if last is None or now - last >= RETENTION_PERIOD:
                    retention = self.prune(by="scheduler")
        except Exception:  # noqa: BLE001 - upkeep must never stop the scheduler
            log.exception("workspace upkeep failed")
            return UpkeepDone(backup=backup, retention=retention, failed=True)
        return UpkeepDone(backup=backup, retention=retention)
