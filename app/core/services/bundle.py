"""A project in one file: `bundle export NAME --output FILE.keel` / `bundle import FILE.keel`.

The bundle is a Keel archive (app/core/store/archive.py, the format of backups): the
project's registry rows (settings, schema, dataset versions, runs, model versions,
aliases, deployments, monitoring results, alerts, audit log, ...) as JSON, its dataset
files, its model files and their drift references, and the manifest of sha256 hashes.

Import checks everything before it writes anything: every member's hash, every model
file's hash against its registry row and its types against Keel's trusted list (plus
the types the exporter had accepted, which the importer must accept again with
--trust); then the files go in and the rows are inserted in one transaction.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from app.core.domain.clock import Clock
from app.core.domain.errors import KeelError
from app.core.domain.upkeep import BundleExported, BundleImported
from app.core.fileio import sha256_file
from app.core.ml import artifacts
from app.core.services.dependencies import RewriteProductionManifest
from app.core.services.paths import check_output_path
from app.core.services.project_data import ProjectData
from app.core.store import project_rows
from app.core.store.archive import ArchiveError, ArchiveReader, write_archive
from app.core.store.project_rows import TableRows
from app.core.store.registry import LATEST_SCHEMA_VERSION, Registry
from app.core.store.workspace import Workspace, check_project_name, project_lock

KIND = "bundle"
ROWS_PREFIX = "rows/"


def _project_files(root: Path, rows: TableRows) -> list[tuple[str, Path]]:
    """(member name, workspace file) for every model, drift reference and dataset file."""
    files = []
    for row in rows.get("model_versions", []):
        if row.get("pruned_at"):
            continue
        artifact = root / row["artifact_path"]
        files.append((f"artifacts/{artifact.name}", artifact))
        reference = artifact.with_suffix(".reference.parquet")
        if reference.exists():
            files.append((f"artifacts/{reference.name}", reference))
    for row in rows.get("dataset_versions", []):
        path = root / row["path"]
        files.append((f"datasets/{path.name}", path))
    return files


def _check_rows(source: Path, schema_version: int, rows: TableRows) -> str:
    if schema_version > LATEST_SCHEMA_VERSION:
        raise ArchiveError(f"{source.name} was written by a newer Keel (registry schema v{schema_version}, "
                           f"this one knows up to v{LATEST_SCHEMA_VERSION}); upgrade Keel to import it")
    projects = rows.get("projects")
    if not isinstance(projects, list) or len(projects) != 1 or not isinstance(projects[0], dict):
        raise ArchiveError(f"{source.name}: member {ROWS_PREFIX}projects.json does not hold one project")
    for table, table_rows in rows.items():
        if not isinstance(table_rows, list) or not all(isinstance(r, dict) for r in table_rows):
            raise ArchiveError(f"{source.name}: member {ROWS_PREFIX}{table}.json is not a list of rows")
    return str(projects[0].get("name"))


def _check_files(source: Path, rows: TableRows, staged: Path, trusted: set[str]) -> None:
    """Each model row's file is in the bundle, matches its sha256, and holds trusted types only."""
    for row in rows.get("model_versions", []):
        if row.get("pruned_at"):
            continue
        member = f"artifacts/{PurePosixPath(row['artifact_path']).name}"
        path = staged / member
        if not path.is_file():
            raise ArchiveError(f"{source.name}: member {member} (model v{row['version']}) is missing")
        if sha256_file(path) != row["sha256"]:
            raise ArchiveError(f"{source.name}: member {member} does not match model v{row['version']}'s sha256")
        exporter_trusted = _json_list(row.get("extra_trusted_types_json"))
        not_accepted = sorted(set(exporter_trusted) - trusted)
        if not_accepted:
            raise KeelError(f"{source.name}: model v{row['version']} needs type(s) outside Keel's trusted list: "
                            f"{', '.join(not_accepted)}; review them and accept each with --trust TYPE")
        try:
            refused = artifacts.untrusted_types(path, exporter_trusted)
        except KeelError as exc:
            raise ArchiveError(f"{source.name}: member {member}: {exc}") from None
        if refused:
            raise ArchiveError(f"{source.name}: member {member} holds untrusted type(s) {', '.join(refused)}")
    for row in rows.get("dataset_versions", []):
        member = f"datasets/{PurePosixPath(row['path']).name}"
        if not (staged / member).is_file():
            raise ArchiveError(f"{source.name}: member {member} (dataset v{row['version']}) is missing")
        if row.get("file_sha256") and sha256_file(staged / member) != row["file_sha256"]:
            raise ArchiveError(f"{source.name}: member {member} does not match dataset v{row['version']}'s sha256")


def _json_list(text: str | None) -> list:
    import json

    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _renamer(original: str, name: str) -> Callable[[str, dict], dict]:
    def rewrite(table: str, row: dict) -> dict:
        if table == "projects":
            row["name"] = name
        if "project_name" in row and row["project_name"] == original:
            row["project_name"] = name
        for column, top in (("artifact_path", "artifacts"), ("path", "datasets")):
            if table in ("model_versions", "dataset_versions") and row.get(column):
                row[column] = f"{top}/{name}/{PurePosixPath(row[column]).name}"
        return row
    return rewrite


class BundleService:
    """A project in one file (Keel.bundle: `keel bundle export|import`)."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData, clock: Clock, rewrite_production_manifest: RewriteProductionManifest) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._clock = clock
        self._rewrite_production_manifest = rewrite_production_manifest

    def export_bundle(self, name: str, output: str | os.PathLike, by: str = "user") -> BundleExported:
        output = check_output_path(self._workspace.root, output)
        if output.is_dir():
            raise KeelError(f"{output}: is a directory; give a file name for the bundle")
        project = self._data.project(name)
        with project_lock(self._workspace, name):  # no train or deploy half-way while the rows are read
            rows = project_rows.export_rows(self._registry, project.id)
            files = _project_files(self._workspace.root, rows)
            meta = {"project": name, "schema_version": LATEST_SCHEMA_VERSION,
                    "tables": {table: len(table_rows) for table, table_rows in rows.items()}}
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                with write_archive(output, KIND, meta, clock=self._clock) as writer:
                    for table, table_rows in rows.items():
                        writer.add_json(f"{ROWS_PREFIX}{table}.json", table_rows)
                    for member, path in files:
                        writer.add_file(member, path)
                    members = len(writer.members)
            except OSError as exc:
                raise KeelError(f"cannot write {output}: {exc.strerror or exc}") from None
        with self._registry.transaction():
            self._registry.add_event(project, "project_exported", f"project {name} exported to {output}", by,
                                     {"path": str(output), "members": members})
        return BundleExported(project=name, path=str(output), members=members, size=output.stat().st_size,
                              model_versions=len(rows.get("model_versions", [])),
                              dataset_versions=len(rows.get("dataset_versions", [])))

    def import_bundle(self, source: str | os.PathLike, new_name: str | None = None, trust: list[str] | None = None,
                      by: str = "user") -> BundleImported:
        source = Path(source).expanduser()
        with ArchiveReader(source, expected_kind=KIND) as reader:
            reader.verify()
            rows = {name[len(ROWS_PREFIX):-len(".json")]: reader.read_json(name)
                    for name in reader.names() if name.startswith(ROWS_PREFIX) and name.endswith(".json")}
            original = _check_rows(source, reader.schema_version, rows)
            name = check_project_name(new_name or original)
            if project_rows.project_exists(self._registry, name):
                raise KeelError(f"project {name!r} already exists in {self._workspace.root}; import it under another "
                                f"name with --as NEW_NAME (nothing was written)")
            with tempfile.TemporaryDirectory(prefix="keel-bundle-") as staging:
                staged = Path(staging)
                for member in reader.names():
                    if not member.startswith(ROWS_PREFIX):
                        reader.extract(member, staged / member)
                _check_files(source, rows, staged, set(trust or []))
                return self._write_project(source, rows, original, name, staged, by)

    def _write_project(self, source: Path, rows: TableRows, original: str, name: str, staged: Path,
                       by: str) -> BundleImported:
        workspace = self._workspace
        with project_lock(workspace, name):
            if project_rows.project_exists(self._registry, name):
                raise KeelError(f"project {name!r} already exists; import it under another name with --as NEW_NAME")
            targets = {"artifacts": workspace.artifact_dir(name), "datasets": workspace.dataset_dir(name)}
            for folder in targets.values():
                if folder.exists() and any(folder.iterdir()):
                    raise KeelError(f"{folder} holds files no project owns (run `keel verify --repair`); nothing was written")
            moved: list[Path] = []
            try:
                for top, folder in targets.items():
                    if (staged / top).is_dir():
                        for path in sorted((staged / top).iterdir()):
                            folder.mkdir(parents=True, exist_ok=True)
                            shutil.move(str(path), str(folder / path.name))
                            moved.append(folder / path.name)
                with self._registry.transaction():
                    try:
                        project_rows.import_rows(self._registry, rows, _renamer(original, name))
                    except (KeyError, TypeError, ValueError) as exc:
                        raise ArchiveError(f"{source.name}: the project's rows are inconsistent ({exc})") from None
                    project = self._registry.project(name)
                    self._registry.add_event(project, "project_imported",
                                             f"project {name} imported from {source.name}"
                                             + (f" (exported as {original})" if name != original else ""), by,
                                             {"path": str(source), "original_name": original})
            except BaseException:
                for path in moved:
                    path.unlink(missing_ok=True)
                raise
        for inbox_folder in ("inbox", "inbox/processed", "inbox/rejected"):
            (workspace.project_dir(name) / inbox_folder).mkdir(parents=True, exist_ok=True)
        self._rewrite_production_manifest(name)
        return BundleImported(project=name, imported_from=str(source), original_name=original,
                              model_versions=len(rows.get("model_versions", [])),
                              dataset_versions=len(rows.get("dataset_versions", [])))
