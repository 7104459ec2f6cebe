"""`verify`: is the workspace whole? And `verify --repair`: make it so, deleting no user data.

Checks: the registry file (PRAGMA integrity_check, foreign_key_check); every model
version's file present with its recorded sha256; every dataset version's file present
and hashed; each project's production pointer naming an intact version and matching
production.json; temporary files (an interrupted write) and orphans (a file no registry
row names: a write killed before its commit, or a file moved aside as `.orphan-*`).

The quick form checks presence only (no hashing). Files younger than a minute are
reported but are no error: a writer may be at work on them. Repair removes Keel's
own temporaries, rewrites stale production manifests and moves orphans into
quarantine/<time>/ (nothing is deleted); it cannot mend a damaged registry or a model
file whose hash is wrong (restore a backup for those).
"""

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from app.core.domain.clock import Clock
from app.core.domain.entities import DatasetFile
from app.core.domain.upkeep import FilesChecked, Finding, Repair, VerifyReport
from app.core.fileio import sha256_file
from app.core.services.dependencies import RewriteProductionManifest
from app.core.store import maintenance
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

YOUNG_SECONDS = 60.0
QUARANTINE_DIR = "quarantine"
TEMPORARY_SUFFIXES = (".tmp", ".partial")
ORPHAN_MARK = ".orphan-"
# beside each model file: its reference rows (written with it) and its prepared drift reference
# (written at deployment, rebuilt by monitoring when missing); neither has a registry row of its own
DERIVED_MODEL_FILES = (".reference.parquet", ".drift.npz")


def _check_file(path: Path, sha256: str | None, quick: bool) -> str | None:
    if not path.is_file():
        return "is missing"
    if not quick and sha256 and sha256_file(path) != sha256:
        return "does not match its recorded sha256 (damaged or replaced)"
    return None


def _check_dataset(root: Path, row: DatasetFile, quick: bool) -> list[Finding]:
    label = f"{row.project} dataset v{row.version}"
    path = root / row.path
    problem = _check_file(path, row.file_sha256, quick)
    if problem:
        return [Finding("dataset", row.path, f"{label}: file {problem}", True, None)]
    if quick or row.file_sha256:
        return []
    # written before hashes were recorded: the Parquet footer and row count must agree with the registry
    try:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
        return [Finding("dataset", row.path, f"{label}: not a readable Parquet file ({exc})", True, None)]
    if rows != row.rows:
        return [Finding("dataset", row.path, f"{label}: {rows} rows, the registry says {row.rows}", True, None)]
    return [Finding("dataset", row.path, f"{label}: no recorded sha256 yet (file reads whole)", True, "record")]


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _stray_files(root: Path, tracked: set[str], now: float) -> list[Finding]:
    findings = []
    for path in _keel_owned_files(root):
        relative = path.relative_to(root).as_posix()
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue  # gone meanwhile
        young = age < YOUNG_SECONDS
        note = f" (written {age:.0f} s ago: a writer may be at work)" if young else ""
        if path.name.endswith(TEMPORARY_SUFFIXES):
            findings.append(Finding("temporary", relative, "temporary file of an interrupted write" + note,
                                    not young, None if young else "remove"))
        elif ORPHAN_MARK in path.name or (relative.split("/")[0] in ("artifacts", "datasets")
                                          and relative not in tracked):
            findings.append(Finding("orphan", relative, "file no registry row names" + note,
                                    not young, None if young else "quarantine"))
    return findings


def _keel_owned_files(root: Path) -> Iterator[Path]:
    """Files Keel writes: the root's own, artifacts/, datasets/, projects/<p>/ and the processed/
    and rejected/ inbox folders — never the inbox drop folder itself (a writer's files)."""
    for entry in os.scandir(root):
        if entry.is_file(follow_symlinks=False) and entry.name.endswith(TEMPORARY_SUFFIXES):
            yield Path(entry.path)
    for top in ("artifacts", "datasets"):
        folder = root / top
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    projects = root / "projects"
    if projects.is_dir():
        for project in projects.iterdir():
            if not project.is_dir():
                continue
            for folder in (project, project / "inbox" / "processed", project / "inbox" / "rejected"):
                if folder.is_dir():
                    yield from (p for p in folder.iterdir()
                                if p.is_file() and not p.is_symlink() and p.name.endswith(TEMPORARY_SUFFIXES))


# ------------------------------------------------------------------ repair


class VerifyService:
    """`verify`: is the workspace whole, and repair what can be (Keel.verifier)."""

    def __init__(self, *, registry: Registry, workspace: Workspace, clock: Clock, rewrite_production_manifest: RewriteProductionManifest) -> None:
        self._registry = registry
        self._workspace = workspace
        self._clock = clock
        self._rewrite_production_manifest = rewrite_production_manifest

    def verify(self, quick: bool = False, repair: bool = False, now: float | None = None) -> VerifyReport:
        findings, checked = self._scan(quick=quick, now=now)
        repaired: tuple[Repair, ...] = ()
        if repair and any(f.repair and f.error for f in findings):
            repaired = self._repair(findings)
            findings, checked = self._scan(quick=quick, now=now)
        return VerifyReport(quick=quick, workspace_root=str(self._workspace.root), checked=checked,
                            problems=tuple(findings), repaired=repaired)

    def _scan(self, quick: bool = False, now: float | None = None) -> tuple[list[Finding], FilesChecked]:
        now = self._clock.seconds() if now is None else now
        registry, root = self._registry, self._workspace.root
        findings = [Finding("database", "registry.db", f"integrity_check: {line}", True, None)
                    for line in maintenance.integrity_problems(registry)]
        findings += [Finding("foreign_keys", "registry.db", line, True, None)
                     for line in maintenance.foreign_key_problems(registry)]
        models = maintenance.model_files(registry)
        data = maintenance.dataset_files(registry)
        damaged_models: set[str] = set()
        for row in models:
            if row.pruned_at:
                continue
            problem = _check_file(root / row.artifact_path, row.sha256, quick)
            if problem:
                damaged_models.add(row.artifact_path)
                findings.append(Finding("artifact", row.artifact_path,
                                        f"{row.project} v{row.version}: model file {problem}", True, None))
        for dataset_file in data:
            findings += _check_dataset(root, dataset_file, quick)
        findings += self._check_production(damaged_models)
        tracked = {model.artifact_path for model in models if not model.pruned_at}
        tracked |= {str(Path(p).with_suffix(suffix)) for p in tracked for suffix in DERIVED_MODEL_FILES}
        tracked |= {dataset_file.path for dataset_file in data}
        findings += _stray_files(root, tracked, now)
        checked = FilesChecked(projects=len(maintenance.project_names(registry)),
                               model_files=sum(1 for r in models if not r.pruned_at), dataset_files=len(data),
                               hashed=not quick)
        return findings, checked

    def _check_production(self, damaged_models: set[str]) -> list[Finding]:
        findings = []
        for pointer in maintenance.production_pointers(self._registry):
            name = pointer.project
            manifest_path = self._workspace.manifest_path(name)
            relative = manifest_path.relative_to(self._workspace.root).as_posix()
            if pointer.version is None:
                if manifest_path.exists():
                    findings.append(Finding("production", relative, f"{name}: production.json names a model but the "
                                            "registry has no deployment", True, "quarantine"))
                continue
            if pointer.artifact_path in damaged_models:
                findings.append(Finding("production", pointer.artifact_path,
                                        f"{name}: the production model v{pointer.version} is not intact", True, None))
            manifest = _read_json(manifest_path)
            if manifest is None:
                findings.append(Finding("production", relative, f"{name}: production.json is missing or unreadable "
                                        f"(production is v{pointer.version})", True, "rewrite"))
            elif manifest.get("version") != pointer.version or manifest.get("sha256") != pointer.sha256:
                findings.append(Finding("production", relative, f"{name}: production.json names v{manifest.get('version')}, "
                                        f"the registry v{pointer.version} (stale)", True, "rewrite"))
        return findings

    def _repair(self, findings: list[Finding]) -> tuple[Repair, ...]:
        root = self._workspace.root
        quarantine = root / QUARANTINE_DIR / self._clock.local_stamp()
        done = []
        for finding in findings:
            if not (finding.error and finding.repair and finding.path):
                continue  # every repair acts on a file
            path = root / finding.path
            if finding.repair == "remove":
                path.unlink(missing_ok=True)
            elif finding.repair == "quarantine":
                if not path.exists():
                    continue
                target = quarantine / finding.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(target))
            elif finding.repair == "rewrite":
                name = Path(finding.path).parent.name
                self._rewrite_production_manifest(name)
            elif finding.repair == "record":
                self._record_dataset_hash(finding.path)
            done.append(Repair(path=finding.path, action=finding.repair, check=finding.check))
        return tuple(done)

    def _record_dataset_hash(self, relative: str) -> None:
        for row in maintenance.dataset_files(self._registry):
            if row.path == relative:
                with self._registry.transaction():
                    maintenance.record_dataset_file_hash(self._registry, row.id, sha256_file(self._workspace.root / relative))
