"""CLI commands that keep a workspace whole: verify, backup, restore, retention, bundle."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import KeelError
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
    result = keel.verifier.verify(quick=args.quick, repair=args.repair)
    print(json.dumps(result) if args.json else format_verify(result), flush=True)
    return 0 if result["healthy"] else 1


def format_verify(result: dict) -> str:
    checked = result["checked"]
    lines = [f"{'Repaired: ' + entry['action'] + ' ' + entry['path']}" for entry in result["repaired"]]
    for problem in result["problems"]:
        marker = "error" if problem["error"] else "note"
        fix = f" [--repair: {problem['repair']}]" if problem["repair"] and problem["error"] else ""
        lines.append(f"{marker}: {problem['check']}: {problem['path']}: {problem['message']}{fix}")
    hashed = "hashed" if checked["hashed"] else "presence only (--quick)"
    verdict = "healthy" if result["healthy"] else "NOT healthy"
    lines.append(f"Workspace {result['workspace']} is {verdict}: {checked['projects']} project(s), "
                 f"{checked['model_files']} model file(s), {checked['dataset_files']} dataset file(s) checked, {hashed}")
    return "\n".join(lines)


def _print_or_return(args: argparse.Namespace, result: dict, describe: Callable[[dict], str]) -> dict | None:
    if args.json:
        return result
    print(describe(result), flush=True)
    return None


def _describe_backup(result: dict) -> str:
    lines = [f"warning: {w}" for w in result.get("warnings", [])]
    if "path" in result:
        lines.append(f"Backed up {len(result['projects'])} project(s), {result['members']} files, "
                     f"{result['size'] / 1e6:.1f} MB -> {result['path']}")
    schedule = result.get("schedule")
    if schedule:
        lines.append(f"Scheduled backup: {schedule['every']}, keep {schedule['keep']}, in {schedule['folder']}"
                     if schedule["enabled"] else "Scheduled backup: off")
    return "\n".join(lines)


def _describe_restore(result: dict) -> str:
    aside = f"; the replaced files are in {result['set_aside']}" if result["set_aside"] else ""
    return f"Restored {len(result['projects'])} project(s) from {result['restored_from']}{aside}"


def _describe_retention(result: dict) -> str:
    rules = result["retention"]
    lines = [f"Retention: keep {rules['keep_archived'] if rules['keep_archived'] is not None else 'all'} archived "
             f"version(s) per project; inbox files kept "
             + (f"{rules['inbox_days']:g} day(s)" if rules["inbox_days"] is not None else "forever")]
    if "pruned_versions" in result:
        verb = "would remove" if result["dry_run"] else "removed"
        lines += [f"{verb}: {v['project']} v{v['version']} ({v['artifact_path']})" for v in result["pruned_versions"]]
        lines += [f"{verb}: {path}" for path in result["removed_inbox_files"]]
    return "\n".join(lines)


def _backup(keel: Keel, args: argparse.Namespace) -> dict | None:
    result = {}
    if args.backup_every is not None or args.keep is not None or args.folder is not None:
        off = (args.backup_every or "").strip().lower() == "off"
        result["schedule"] = keel.upkeep.set_backup_schedule(every=None if off else args.backup_every,
                                                        keep=args.keep, folder=args.folder, off=off)
    elif args.destination is None:
        result["schedule"] = keel.upkeep.backup_schedule()
    if args.destination is not None:
        result.update(keel.backup.backup(args.destination))
    return _print_or_return(args, result, _describe_backup)


def restore_command(root: str | os.PathLike, args: argparse.Namespace) -> tuple[Keel, dict | None]:
    """-> (the opened Keel, the handler's result). A registry that cannot be opened is replaced
    (with --force) before Keel opens the workspace."""
    from app.core.domain.errors import IntegrityError
    from app.core.services.lifecycle import Keel

    try:
        keel = Keel.open(root, refresh_manifests=False)
    except IntegrityError:
        set_aside = backup_service.restore_over_damaged_registry(Path(root), args.source, force=args.force)
        keel = Keel.open(root)
        return keel, _print_or_return(args, keel.backup.restore_finished(args.source, set_aside),
                                      _describe_restore)
    return keel, _print_or_return(args, keel.backup.restore(args.source, force=args.force),
                                  _describe_restore)


def _count_or_off(text: str | None, flag: str, kind: Callable[[str], Any] = int) -> Any:
    if text is None:
        return "unchanged"
    if text.strip().lower() == "off":
        return None
    try:
        return kind(text)
    except ValueError:
        raise KeelError(f"{flag} takes a number or 'off', got {text!r}") from None


def _retention(keel: Keel, args: argparse.Namespace) -> dict | None:
    if args.dry_run and not args.apply:
        raise KeelError("--dry-run goes with --apply")
    keep = _count_or_off(args.keep_archived, "--keep-archived")
    days = _count_or_off(args.inbox_days, "--inbox-days", float)
    settings = (keel.upkeep.set_retention(keep, days) if (keep, days) != ("unchanged", "unchanged")
                else keel.upkeep.retention())
    result = {"retention": settings}
    if args.apply:
        result.update(keel.upkeep.prune(dry_run=args.dry_run))
    return _print_or_return(args, result, _describe_retention)


def _describe_bundle(result: dict) -> str:
    if "imported_from" in result:
        return (f"Imported project {result['project']} from {result['imported_from']}: "
                f"{result['model_versions']} model version(s), {result['dataset_versions']} dataset version(s)")
    return (f"Exported project {result['project']} ({result['model_versions']} model version(s), "
            f"{result['dataset_versions']} dataset version(s), {result['size'] / 1e6:.1f} MB) -> {result['path']}")


HANDLERS = {
    ("bundle", "export"): lambda keel, args: _print_or_return(
        args, keel.bundle.export_bundle(args.name, args.output), _describe_bundle),
    ("bundle", "import"): lambda keel, args: _print_or_return(
        args, keel.bundle.import_bundle(args.file, args.new_name, args.trust), _describe_bundle),
    ("verify", None): _verify,
    ("backup", None): _backup,
    ("restore", None): lambda keel, args: None,  # run by restore_command: it must open the workspace itself
    ("retention", None): _retention,
}
