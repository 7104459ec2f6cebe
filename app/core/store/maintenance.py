"""The registry's side of verify, backup, restore and retention (the SQL lives here)."""

import json
import sqlite3
from pathlib import Path
from typing import Any

from app.core.domain.entities import DatabaseSummary, DatasetFile, ModelFile, ProductionPointer
from app.core.domain.upkeep import BackupScheduleSetting, RetentionRules
from app.core.store.registry import BUSY_TIMEOUT_MS, Registry


# ------------------------------------------------------------------ checks
def integrity_problems(registry: Registry) -> list[str]:
    """PRAGMA integrity_check: [] when the database file is sound."""
    try:
        rows = [r[0] for r in registry.conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def foreign_key_problems(registry: Registry) -> list[str]:
    rows = registry.conn.execute("PRAGMA foreign_key_check").fetchall()
    return [f"{table} row {rowid} names a missing {parent} row" for table, rowid, parent, _ in rows]


_MODEL_FILES = ("SELECT m.id, p.name, m.version, m.artifact_path, m.sha256, m.pruned_at, m.archived "
                "FROM model_versions m JOIN projects p ON p.id = m.project_id ")


def _model_file(row: tuple) -> ModelFile:
    model_version_id, project, version, artifact_path, sha256, pruned_at, archived = row
    return ModelFile(model_version_id, project, version, artifact_path, sha256, pruned_at, bool(archived))


def model_files(registry: Registry) -> list[ModelFile]:
    """Every model version's file, by project name and version."""
    return [_model_file(row) for row in registry.conn.execute(_MODEL_FILES + "ORDER BY p.name, m.version")]


def dataset_files(registry: Registry) -> list[DatasetFile]:
    """Every dataset version's file, by project name and version."""
    rows = registry.conn.execute(
        "SELECT d.id, p.name, d.version, d.path, d.file_sha256, d.rows "
        "FROM dataset_versions d JOIN projects p ON p.id = d.project_id ORDER BY p.name, d.version")
    return [DatasetFile(*row) for row in rows]


def record_dataset_file_hash(registry: Registry, dataset_version_id: int, sha256: str) -> None:
    registry.conn.execute("UPDATE dataset_versions SET file_sha256 = ? WHERE id = ? AND file_sha256 IS NULL",
                          (sha256, dataset_version_id))


def production_pointers(registry: Registry) -> list[ProductionPointer]:
    """One per project: its current deployment's version, sha256 and artifact (None: none yet)."""
    rows = registry.conn.execute(
        "SELECT p.id, p.name, m.version, m.sha256, m.artifact_path, d.deployed_at, d.by, d.reason FROM projects p "
        "LEFT JOIN deployments d ON d.id = (SELECT MAX(id) FROM deployments WHERE project_id = p.id) "
        "LEFT JOIN model_versions m ON m.id = d.model_version_id ORDER BY p.name")
    return [ProductionPointer(*row) for row in rows]


def project_names(registry: Registry) -> list[str]:
    return [r["name"] for r in registry._query("SELECT name FROM projects ORDER BY name")]


# ------------------------------------------------------------------ workspace settings
# each a JSON value in the workspace_settings table, under its key
SCHEDULED_BACKUP = "scheduled_backup"
LAST_SCHEDULED_BACKUP_AT = "last_scheduled_backup_at"
RETENTION = "retention"
LAST_RETENTION_AT = "last_retention_at"


def _workspace_setting(registry: Registry, key: str) -> Any:
    row = registry._query_one("SELECT value_json FROM workspace_settings WHERE key = ?", (key,))
    return json.loads(row["value_json"]) if row else None


def _set_workspace_setting(registry: Registry, key: str, value: Any) -> None:
    registry.conn.execute(
        "INSERT INTO workspace_settings (key, value_json) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json", (key, json.dumps(value)))


def scheduled_backup(registry: Registry) -> BackupScheduleSetting:
    """The scheduled backup as set (off when never set)."""
    return BackupScheduleSetting.from_json(_workspace_setting(registry, SCHEDULED_BACKUP))


def set_scheduled_backup(registry: Registry, setting: BackupScheduleSetting) -> None:
    _set_workspace_setting(registry, SCHEDULED_BACKUP, setting.to_json())


def last_scheduled_backup_at(registry: Registry) -> str | None:
    """When the last scheduled backup was made (ISO 8601; None: never)."""
    return _workspace_setting(registry, LAST_SCHEDULED_BACKUP_AT)


def set_last_scheduled_backup_at(registry: Registry, at: str) -> None:
    _set_workspace_setting(registry, LAST_SCHEDULED_BACKUP_AT, at)


def retention_rules(registry: Registry) -> RetentionRules:
    """The retention rules as set (both off when never set)."""
    return RetentionRules.from_json(_workspace_setting(registry, RETENTION))


def set_retention_rules(registry: Registry, rules: RetentionRules) -> None:
    _set_workspace_setting(registry, RETENTION, rules.to_json())


def last_retention_at(registry: Registry) -> str | None:
    """When retention was last applied (ISO 8601; None: never)."""
    return _workspace_setting(registry, LAST_RETENTION_AT)


def set_last_retention_at(registry: Registry, at: str) -> None:
    _set_workspace_setting(registry, LAST_RETENTION_AT, at)


# ------------------------------------------------------------------ backup and restore of the database
def copy_database(source: Path, destination: Path) -> None:
    """A consistent copy of a live database (SQLite's online backup API; writers keep working)."""
    src = sqlite3.connect(str(source), timeout=BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(str(destination))
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def database_summary(path: Path) -> DatabaseSummary:
    """Schema version and project names of a database file (a backup being restored)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        projects = tuple(r[0] for r in conn.execute("SELECT name FROM projects ORDER BY name"))
        check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        return DatabaseSummary(schema_version=version, projects=projects, intact=check == ["ok"])
    except sqlite3.DatabaseError as exc:
        return DatabaseSummary(schema_version=0, projects=(), intact=False, error=str(exc))
    finally:
        conn.close()


def replace_database(registry: Registry, source: Path) -> None:
    """Overwrite the live registry with the database at source, in one SQLite transaction."""
    src = sqlite3.connect(str(source))
    try:
        src.backup(registry.conn)
    finally:
        src.close()


# ------------------------------------------------------------------ retention
def prunable_model_versions(registry: Registry, keep_archived: int) -> list[ModelFile]:
    """Archived versions beyond the newest keep_archived of each project, never one that a
    deployment, an alias or the production pointer names, and not already pruned."""
    rows = [_model_file(row) for row in registry.conn.execute(
        _MODEL_FILES + "WHERE m.archived = 1 AND m.pruned_at IS NULL "
        "AND m.id NOT IN (SELECT model_version_id FROM deployments) "
        "AND m.id NOT IN (SELECT model_version_id FROM model_aliases) "
        "ORDER BY p.name, m.version")]
    archived_by_project: dict[str, list[dict]] = {}
    for row in registry._query("SELECT p.name AS project, m.id FROM model_versions m JOIN projects p "
                              "ON p.id = m.project_id WHERE m.archived = 1 ORDER BY m.version DESC"):
        archived_by_project.setdefault(row["project"], []).append(row["id"])
    kept = {mv_id for ids in archived_by_project.values() for mv_id in ids[:keep_archived]}
    return [row for row in rows if row.id not in kept]


def mark_pruned(registry: Registry, model_version_id: int) -> None:
    registry.conn.execute("UPDATE model_versions SET pruned_at = ? WHERE id = ?", (registry.clock(), model_version_id))
