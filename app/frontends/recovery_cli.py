"""CLI commands that keep a workspace whole: verify, backup, restore, retention, bundle."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import KeelError
from app.core.domain.upkeep import (
    BackupMade,
    BackupSchedule,
    BundleExported,
    BundleImported,
    PruneResult,
    Restored,
    RetentionSettings,
    VerifyReport,
)
from app.core.services import backup as backup_service

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel


def register_parser(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    verify = command("verify", "check the registry and every file; --repair mends what it safely can")
    verify.add_argument("--quick", action="store_true", help="presence only: skip hashing the files")
    verify.add_argument("--repair", action="store_true",
                        help="remove temporaries, rewrite stale manifests, move orphans to quarantine/")
    backup = command("backup", "the whole workspace in one file, while it keeps working; or set the scheduled backup")
    backup.add_argument("destination", nargs="?", help="the backup file to write (outside the workspace)")
    backup.add_argument("--schedule", dest="backup_every", metavar="'every 1d'",
                        help="scheduled backups by the window and `keel run`; 'off' stops them")
    backup.add_argument("--keep", type=int, help="scheduled backups kept (the oldest beyond N are removed)")
    backup.add_argument("--folder", help="where scheduled backups go (default: <workspace>-backups beside it)")
    restore = command("restore", "replace the workspace with a backup (verified before anything is written)")
    restore.add_argument("source")
    restore.add_argument("--force", action="store_true", help="replace a workspace that has projects "
                         "(its files are kept in quarantine/)")
    retention = command("retention", "show or set what retention prunes; --apply prunes now")
    retention.add_argument("--keep-archived", dest="keep_archived", metavar="N|off",
                           help="keep the newest N archived versions of each project (files of older ones removed)")
    retention.add_argument("--inbox-days", dest="inbox_days", metavar="D|off",
                           help="remove processed/ and rejected/ inbox files older than D days")
    retention.add_argument("--apply", action="store_true", help="prune now")
    bundle = commands.add_parser("bundle", help="a project in one file: export or import")
    bundle_commands = bundle.add_subparsers(dest="project_command", parser_class=commands._parser_class)
    bundle_export = command("export", "write a project (rows, data, models, history) into one .keel file",
                            bundle_commands)
    bundle_export.add_argument("name")
    bundle_export.add_argument("--output", required=True, help="the .keel file to write (outside the workspace)")
    bundle_import = command("import", "add the project of a .keel file to the workspace (verified first)",
                            bundle_commands)
    bundle_import.add_argument("file")
    bundle_import.add_argument("--as", dest="new_name", help="import under this name")
    bundle_import.add_argument("--trust", action="append", default=[], metavar="TYPE",
                               help="accept a type outside Keel's trusted list that a model of the bundle needs")
    retention.add_argument("--dry-run", action="store_true", dest="dry_run", help="with --apply: list, remove nothing")


def _verify(keel: Keel, args: argparse.Namespace) -> int:
    report = keel.verifier.verify(quick=args.quick, repair=args.repair)
    print(json.dumps(report.to_json()) if args.json else format_verify(report), flush=True)
    return 0 if report.healthy else 1


def format_verify(report: VerifyReport) -> str:
    checked = report.checked
    lines = [f"Repaired: {repair.action} {repair.path}" for repair in report.repaired]
    for problem in report.problems:
        marker = "error" if problem.error else "note"
        fix = f" [--repair: {problem.repair}]" if problem.repair and problem.error else ""
        lines.append(f"{marker}: {problem.check}: {problem.path}: {problem.message}{fix}")
    hashed = "hashed" if checked.hashed else "presence only (--quick)"
    verdict = "healthy" if report.healthy else "NOT healthy"
    lines.append(f"Workspace {report.workspace_root} is {verdict}: {checked.projects} project(s), "
                 f"{checked.model_files} model file(s), {checked.dataset_files} dataset file(s) checked, {hashed}")
    return "\n".join(lines)


def _print_or_return(args: argparse.Namespace, document: dict[str, Any], lines: str) -> dict[str, Any] | None:
    """The command's JSON document with --json (the caller prints it), else its lines printed here."""
    if args.json:
        return document
    print(lines, flush=True)
    return None


def _describe_backup(made: BackupMade | None, schedule: BackupSchedule | None) -> str:
    lines = [f"warning: {w}" for w in made.warnings] if made else []
    if made:
        lines.append(f"Backed up {len(made.projects)} project(s), {made.members} files, "
                     f"{made.size / 1e6:.1f} MB -> {made.path}")
    if schedule:
        lines.append(f"Scheduled backup: {schedule.every}, keep {schedule.keep}, in {schedule.folder}"
                     if schedule.enabled else "Scheduled backup: off")
    return "\n".join(lines)


def _describe_restore(restored: Restored) -> str:
    aside = f"; the replaced files are in {restored.set_aside}" if restored.set_aside else ""
    return f"Restored {len(restored.projects)} project(s) from {restored.restored_from}{aside}"


def _describe_retention(rules: RetentionSettings, pruned: PruneResult | None) -> str:
    lines = [f"Retention: keep {rules.keep_archived if rules.keep_archived is not None else 'all'} archived "
             f"version(s) per project; inbox files kept "
             + (f"{rules.inbox_days:g} day(s)" if rules.inbox_days is not None else "forever")]
    if pruned is not None:
        verb = "would remove" if pruned.dry_run else "removed"
        lines += [f"{verb}: {v.project} v{v.version} ({v.artifact_path})" for v in pruned.pruned_versions]
        lines += [f"{verb}: {path}" for path in pruned.removed_inbox_files]
    return "\n".join(lines)


def _backup(keel: Keel, args: argparse.Namespace) -> dict[str, Any] | None:
    schedule: BackupSchedule | None = None
    if args.backup_every is not None or args.keep is not None or args.folder is not None:
        off = (args.backup_every or "").strip().lower() == "off"
        schedule = keel.upkeep.set_backup_schedule(every=None if off else args.backup_every,
                                                   keep=args.keep, folder=args.folder, off=off)
    elif args.destination is None:
        schedule = keel.upkeep.backup_schedule()
    made = keel.backup.backup(args.destination) if args.destination is not None else None
    document = ({"schedule": schedule.to_json()} if schedule else {}) | (made.to_json() if made else {})
    return _print_or_return(args, document, _describe_backup(made, schedule))


def _restored(args: argparse.Namespace, restored: Restored) -> dict[str, Any] | None:
    return _print_or_return(args, restored.to_json(), _describe_restore(restored))


def restore_command(root: str | os.PathLike, args: argparse.Namespace) -> tuple[Keel, dict[str, Any] | None]:
    """-> (the opened Keel, the handler's result). A registry that cannot be opened is replaced
    (with --force) before Keel opens the workspace."""
    from app.core.domain.errors import IntegrityError
    from app.core.services.lifecycle import Keel

    try:
        keel = Keel.open(root, refresh_manifests=False)
    except IntegrityError:
        set_aside = backup_service.restore_over_damaged_registry(Path(root), args.source, force=args.force)
        keel = Keel.open(root)
        return keel, _restored(args, keel.backup.restore_finished(args.source, set_aside))
    return keel, _restored(args, keel.backup.restore(args.source, force=args.force))


def _count_or_off(text: str | None, flag: str, kind: Callable[[str], Any] = int) -> Any:
    if text is None:
        return "unchanged"
    if text.strip().lower() == "off":
        return None
    try:
        return kind(text)
    except ValueError:
        raise KeelError(f"{flag} takes a number or 'off', got {text!r}") from None


def _retention(keel: Keel, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.dry_run and not args.apply:
        raise KeelError("--dry-run goes with --apply")
    keep = _count_or_off(args.keep_archived, "--keep-archived")
    days = _count_or_off(args.inbox_days, "--inbox-days", float)
    settings = (keel.upkeep.set_retention(keep, days) if (keep, days) != ("unchanged", "unchanged")
                else keel.upkeep.retention())
    pruned = keel.upkeep.prune(dry_run=args.dry_run) if args.apply else None
    document = {"retention": settings.to_json()} | (pruned.to_json() if pruned else {})
    return _print_or_return(args, document, _describe_retention(settings, pruned))


def _export_bundle(keel: Keel, args: argparse.Namespace) -> dict[str, Any] | None:
    exported: BundleExported = keel.bundle.export_bundle(args.name, args.output)
    return _print_or_return(args, exported.to_json(), (
        f"Exported project {exported.project} ({exported.model_versions} model version(s), "
        f"{exported.dataset_versions} dataset version(s), {exported.size / 1e6:.1f} MB) -> {exported.path}"))


def _import_bundle(keel: Keel, args: argparse.Namespace) -> dict[str, Any] | None:
    imported: BundleImported = keel.bundle.import_bundle(args.file, args.new_name, args.trust)
    return _print_or_return(args, imported.to_json(), (
        f"Imported project {imported.project} from {imported.imported_from}: "
        f"{imported.model_versions} model version(s), {imported.dataset_versions} dataset version(s)"))


HANDLERS = {
    ("bundle", "export"): _export_bundle,
    ("bundle", "import"): _import_bundle,
    ("verify", None): _verify,
    ("backup", None): _backup,
    ("restore", None): lambda keel, args: None,  # run by restore_command: it must open the workspace itself
    ("retention", None): _retention,
}
