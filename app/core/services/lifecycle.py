"""The service layer: every lifecycle action the CLI, the GUI and the scheduler perform.

Each mutating action takes the project's cross-process lock, writes its files first
(temporary name, then rename), and records the registry rows and its audit event in
one transaction. If anything fails before the commit, files it created are removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.domain.decisions import SamplingRecord, WindowParameters
from app.core.domain.entities import (
    Alert,
    AlertNotice,
    DatasetVersion,
    Deployment,
    Event,
    ModelVersion,
    MonitorResult,
    PolicyDecision,
    Project,
    Schedule,
    Schema,
    TrainingData,
)
from app.core.domain.errors import Cancelled, KeelError, NotFoundError, ValidationError
from app.core.domain.project_name import check_project_name
from app.core.domain.results import (
    DatasetStatus,
    ExportedModel,
    History,
    ImportedModel,
    IngestResult,
    LastMonitoring,
    ModelMark,
    PredictResult,
    ProductionChange,
    ProductionOverview,
    ProjectCreated,
    ProjectStatus,
    ProjectSummary,
    TrainResult,
    VersionStatus,
)
from app.core.domain.settings import ProjectSettings, default_metric, parse_schedule
from app.core.fileio import (
    atomic_path,
    discard_staged,
    install_staged,
    sha256_file,
    stage_bytes,
    write_text_atomic,
)
from app.core.services.dependencies import Progress, WorkspaceServices
from app.core.services.paths import check_output_path, user_output
from app.core.services.project_data import LoadedModel, ProjectData
from app.core.store.registry import NewFiles, Registry
from app.core.store.workspace import FileLock, Workspace, project_lock

log = logging.getLogger("keel.lifecycle")

if TYPE_CHECKING:  # pandas and the ML modules load on first use: read-only commands never need them
    import pandas as pd

    from app.core.ml import datasets
    from app.core.ml.chunked_ingest import IngestedFile
    from app.core.ml.training import FitResult
    from app.core.services.backup import BackupService
    from app.core.services.batches import BatchService
    from app.core.services.bundle import BundleService
    from app.core.services.inbox import InboxService
    from app.core.services.insights import InsightsService
    from app.core.services.labels import LabelService
    from app.core.services.mlflow_model import MlflowModelService
    from app.core.services.monitoring import MonitoringService
    from app.core.services.policy import PolicyService
    from app.core.services.prediction_log import PredictionLogWriter
    from app.core.services.reports import ReportService
    from app.core.services.traffic import TrafficService
    from app.core.services.upkeep import UpkeepService
    from app.core.services.verify import VerifyService

REFERENCE_TRAIN_ROWS = 20_000
RECENT_EVENTS = 8


def _no_progress(fraction: float, message: str) -> None:
    pass


@dataclass(frozen=True)
class _Training:
    """One training of a project, from taking its version number to committing it."""

    project: Project
    settings: ProjectSettings
    version: int
    data: TrainingData
    model_path: Path
    by: str
    reason: str
    cancel_event: threading.Event | None
    report: Progress

    @property
    def reference_path(self) -> Path:
        return self.model_path.with_suffix(".reference.parquet")


@dataclass(frozen=True)
class _TrainedModel:
    result: FitResult
    sha256: str
    started_at: str
    seconds: float


class Keel:
    """One workspace: its registry and its files (both private), the lifecycle actions, and the other
    services, built once and handed only their dependencies (keel.policy, keel.inbox, ...)."""

    def __init__(self, workspace: Workspace, refresh_manifests: bool = True, clock: Clock = SYSTEM_CLOCK):
        """refresh_manifests: rewrite stale production.json files now (off only for `verify`,
        which reports them as they are). clock: what the services read as now (a test's fixed one)."""
        self._workspace = workspace
        self._registry = Registry(workspace.registry_path, clock=clock)
        self._data = ProjectData(self._registry, workspace)
        self._clock = clock
        self._services = WorkspaceServices(self._registry, workspace, self._data, clock)
        if refresh_manifests:
            self._refresh_manifests_on_open()

    def _refresh_manifests_on_open(self) -> None:
        """Readers of production.json never see a stale one. A damaged registry is left for the
        command (or `verify`) to report: opening the workspace must not fail on it."""
        try:
            fixed = self.refresh_manifests()
        except (sqlite3.DatabaseError, OSError, KeelError) as exc:
            log.warning("production manifests not checked: %s: %s", type(exc).__name__, exc)
            return
        if fixed:
            log.warning("rewrote the stale production.json of %s from the registry", ", ".join(fixed))

    @classmethod
    def open(cls, workspace_dir: str | os.PathLike | None = None, refresh_manifests: bool = True,
             clock: Clock = SYSTEM_CLOCK) -> Keel:
        return cls(Workspace.open(workspace_dir), refresh_manifests=refresh_manifests, clock=clock)

    def close(self) -> None:
        self._registry.close()

    @property
    def clock(self) -> Clock:
        """Now, as every service of this workspace reads it; a front end stamps its own times with it."""
        return self._clock

    # ================================================================ the other services
    # Built once per workspace, each handed only its dependencies, one by one: the store, the files,
    # the shared reads, the clock and the caches (self._services), the other services it calls and
    # the lifecycle actions it takes (Keel's bound methods). A front end calls them
    # (keel.policy.monitor(name)) and never holds their dependencies or the store.
    # Their modules are imported on first use: the policy's and monitoring's load pandas and
    # scikit-learn, which read-only commands never need.
    @cached_property
    def inbox(self) -> InboxService:
        from app.core.services.inbox import InboxService

        return InboxService(registry=self._registry, workspace=self._workspace, clock=self._clock, ingest=self.ingest)

    @cached_property
    def batches(self) -> BatchService:
        from app.core.services.batches import BatchService

        return BatchService(registry=self._registry, data=self._data, ingest=self.ingest)

    @cached_property
    def monitoring(self) -> MonitoringService:
        from app.core.services.monitoring import MonitoringService

        return MonitoringService(registry=self._registry, workspace=self._workspace, data=self._data,
                                 traffic=self.traffic, drift_references=self._services.drift_references)

    @cached_property
    def policy(self) -> PolicyService:
        from app.core.services.policy import PolicyService

        return PolicyService(registry=self._registry, workspace=self._workspace, data=self._data,
                             inbox=self.inbox, monitoring=self.monitoring, loaded_models=self._services.loaded_models,
                             train=self.train, deploy=self.deploy, deploy_holding_lock=self.deploy_holding_lock,
                             rollback=self.rollback)

    @cached_property
    def insights(self) -> InsightsService:
        from app.core.services.insights import InsightsService

        return InsightsService(registry=self._registry, workspace=self._workspace, data=self._data)

    @cached_property
    def traffic(self) -> TrafficService:
        from app.core.services.traffic import TrafficService

        return TrafficService(registry=self._registry, data=self._data, clock=self._clock)

    @cached_property
    def labels(self) -> LabelService:
        from app.core.services.labels import LabelService

        return LabelService(registry=self._registry, workspace=self._workspace, data=self._data, clock=self._clock)

    @cached_property
    def reports(self) -> ReportService:
        from app.core.services.reports import ReportService

        return ReportService(registry=self._registry, workspace=self._workspace, data=self._data, clock=self._clock,
                             insights=self.insights)

    @cached_property
    def mlflow(self) -> MlflowModelService:
        from app.core.services.mlflow_model import MlflowModelService

        return MlflowModelService(registry=self._registry, workspace=self._workspace, data=self._data, clock=self._clock)

    @cached_property
    def backup(self) -> BackupService:
        from app.core.services.backup import BackupService

        return BackupService(registry=self._registry, workspace=self._workspace, clock=self._clock,
                             rewrite_production_manifest=self.rewrite_production_manifest)

    @cached_property
    def bundle(self) -> BundleService:
        from app.core.services.bundle import BundleService

        return BundleService(registry=self._registry, workspace=self._workspace, data=self._data, clock=self._clock,
                             rewrite_production_manifest=self.rewrite_production_manifest)

    @cached_property
    def verifier(self) -> VerifyService:
        from app.core.services.verify import VerifyService

        return VerifyService(registry=self._registry, workspace=self._workspace, clock=self._clock,
                             rewrite_production_manifest=self.rewrite_production_manifest)

    @cached_property
    def upkeep(self) -> UpkeepService:
        from app.core.services.upkeep import UpkeepService

        return UpkeepService(registry=self._registry, workspace=self._workspace, clock=self._clock, backup=self.backup)

    # ================================================================ the workspace's places
    @property
    def root(self) -> Path:
        return self._workspace.root

    @property
    def log_path(self) -> Path:
        return self._workspace.log_path

    @property
    def demo_dir(self) -> Path:
        """Where the demo keeps its generated data and its stream's state."""
        return self._workspace.demo_dir

    def inbox_dir(self, name: str) -> Path:
        """The folder a project's new files are dropped into (swept by monitoring)."""
        return self._workspace.inbox_dir(name)

    def discard_project_folder(self, name: str) -> None:
        """Remove projects/<name>/ (its inbox and production manifests), which delete_project leaves to the user."""
        shutil.rmtree(self._workspace.project_dir(name), ignore_errors=True)

    def change_stamp(self) -> tuple:
        """A value that changes whenever any process commits to the registry (cheap: polled every second)."""
        return self._registry.change_stamp()

    @contextmanager
    def holding_project_lock(self, project: str) -> Iterator[None]:
        """The project's cross-process lock, held for the block: lifecycle work on one project runs one at a
        time across processes. A flock: a block that holds it calls the *_holding_lock methods, never the
        ones that take it again."""
        with project_lock(self._workspace, project):
            yield

    # ================================================================ projects
    def create_project(self, name: str, data_path: str | os.PathLike, target: str, task: str | None = None,
                       settings: dict | None = None, by: str = "user") -> ProjectCreated:
        from app.core.ml import datasets, training

        check_project_name(name)
        if self._registry.find_project(name) is not None:
            raise KeelError(f"project {name!r} already exists")
        raw = datasets.read_table(data_path)
        id_column = (settings or {}).get("id_column")
        if id_column is not None and id_column not in raw.frame.columns:
            raise ValidationError(f"{raw.source}: no ID column {id_column!r} "
                                  f"(columns: {', '.join(map(str, raw.frame.columns))})")
        schema = datasets.infer_schema(raw, target, task, id_column=id_column)
        task = schema.task
        merged = {"metric": default_metric(task), **(settings or {})}
        project_settings = ProjectSettings.from_json(merged).validate(task)
        if project_settings.params:  # refuse a bad --param now, as `project set` does
            training.make_estimator(task, project_settings.preset, project_settings.params, project_settings.seed)
        batch = datasets.clean(raw, schema, purpose="create", id_column=id_column)
        training.check_trainable(batch.frame, schema, raw.source)
        schema = replace(schema, classes=self._classes(batch.frame, schema))
        with self.holding_project_lock(name):
            # again under the lock: another process may have created it since the check above, and
            # writing v1.parquet now would replace that project's data (then delete it on failure)
            if self._registry.find_project(name) is not None:
                raise KeelError(f"project {name!r} already exists")
            dataset_path = self._workspace.dataset_dir(name) / "v1.parquet"
            with self._registry.files_then_rows() as files:
                datasets.write_frame(datasets.to_storage_frame(batch.frame, schema), files.add(dataset_path))
                with files.commit():
                    project_id = self._registry.insert_project(
                        name, task, target, project_settings.metric, schema, project_settings.to_json())
                    project = self._registry.project(name)
                    self._insert_dataset(project, batch, datasets.content_hash(batch.frame, batch.row_hashes), dataset_path, 1, None,
                                        str(Path(data_path).name))
                    kind, expression = parse_schedule(project_settings.schedule)
                    self._registry.upsert_schedule(project_id, kind, str(expression), project_settings.schedule_enabled)
                    self._registry.add_event(project, "project_created",
                                            f"project {name} created from {raw.source} ({batch.rows} rows, target {target}, {task})",
                                            by, {"schema_features": schema.features, "warnings": batch.warnings})
        for folder in ("inbox", "inbox/processed", "inbox/rejected"):
            (self._workspace.project_dir(name) / folder).mkdir(parents=True, exist_ok=True)
        return ProjectCreated(project=name, task=task, target=target, dataset_version=1, rows=batch.rows,
                              labelled_rows=batch.labelled_rows, warnings=tuple(batch.warnings), schema=schema,
                              settings=project_settings)

    @staticmethod
    def _classes(frame: pd.DataFrame, schema: Schema) -> tuple[int | str, ...]:
        if schema.task != "classification":
            return ()
        values = frame[schema.target].dropna().unique().tolist()
        return tuple(sorted((v.item() if hasattr(v, "item") else v) for v in values))

    def project(self, name: str) -> Project:
        return self._registry.project(name)

    def find_project(self, name: str) -> Project | None:
        return self._registry.find_project(name)

    def project_names(self) -> list[str]:
        return [project.name for project in self._registry.projects()]

    def settings(self, name: str) -> ProjectSettings:
        return self.project(name).settings

    def set_project(self, name: str, changes: dict, by: str = "user", replace_params: bool = False) -> ProjectSettings:
        """Change settings. changes["params"] is merged into the preset's current parameters,
        or replaces them as a whole with replace_params (how a parameter is removed)."""
        with self.holding_project_lock(name):
            project = self.project(name)
            updated = self._updated_settings(project, changes, replace_params)
            changed = {k: v for k, v in updated.to_json().items() if getattr(project.settings, k) != v}
            with self._registry.transaction():
                self._registry.update_project_settings(project.id, updated.to_json(), updated.metric)
                kind, expression = parse_schedule(updated.schedule)
                self._registry.upsert_schedule(project.id, kind, str(expression), updated.schedule_enabled)
                if changed:
                    self._registry.add_event(project, "settings_changed",
                                            "settings changed: " + ", ".join(f"{k}={v}" for k, v in changed.items()),
                                            by, {"changed": changed})
        return updated

    def check_settings(self, name: str, changes: dict, replace_params: bool = False) -> ProjectSettings:
        """The settings set_project would store, checked the same way, without writing anything
        (a settings dialog says what is wrong before it closes). Raises KeelError."""
        return self._updated_settings(self.project(name), changes, replace_params)

    def _updated_settings(self, project: Project, changes: dict, replace_params: bool) -> ProjectSettings:
        from app.core.ml import training

        current = project.settings
        merged = {**current.to_json(), **changes}  # changes: named settings, as `project set` and the dialog give them
        if "params" in changes and not replace_params:
            merged["params"] = {**current.params, **changes["params"]}
        updated = ProjectSettings.from_json(merged).validate(project.task)
        self._check_id_column(project, updated.id_column)
        if updated.preset != current.preset and "params" not in changes:
            updated = replace(updated, params={})
        if updated.params:
            training.make_estimator(project.task, updated.preset, updated.params, updated.seed)
        return updated

    @staticmethod
    def _check_id_column(project: Project, id_column: str | None) -> None:
        schema = project.schema
        if id_column is None or id_column == project.settings.id_column:
            return
        if id_column == schema.target:
            raise KeelError(f"--id-column {id_column!r} is the target of project {project.name!r}")
        if id_column in schema.features:
            raise KeelError(f"--id-column {id_column!r} is a feature of project {project.name!r}'s models and an "
                            "ID column is never a feature: create a new project with --id-column")

    def list_projects(self) -> list[ProjectSummary]:
        result = []
        for project in self._registry.projects():
            deployment = self._registry.current_deployment(project.id)
            result.append(ProjectSummary(name=project.name, task=project.task, target=project.target,
                                         metric=project.metric,
                                         production_version=deployment.version if deployment else None,
                                         open_alerts=len(self._registry.open_alerts(project.id))))
        return result

    def delete_project(self, name: str, by: str = "user") -> None:
        with self.holding_project_lock(name):
            project = self.project(name)
            with self._registry.transaction():
                self._registry.add_event(project, "project_deleted", f"project {name} deleted", by)
                self._registry.delete_project(project.id)
        for folder in (self._workspace.artifact_dir(name), self._workspace.dataset_dir(name)):
            shutil.rmtree(folder, ignore_errors=True)
        # the production manifests describe deleted versions: a new project of the same name
        # must not inherit them (the inbox is the user's, left alone)
        manifest = self._workspace.manifest_path(name)
        for path in (manifest, manifest.with_name("production.previous.json")):
            path.unlink(missing_ok=True)

    # ================================================================ data
    def _insert_dataset(self, project: Project, batch: datasets.CleanBatch | IngestedFile, digest: str, path: Path,
                        version: int, parent_id: int | None, source: str) -> int:
        return self._registry.insert_dataset_version(
            project_id=project.id, version=version, path=str(path.relative_to(self._workspace.root)),
            content_sha256=digest, file_sha256=sha256_file(path), rows=batch.rows, labelled_rows=batch.labelled_rows,
            source=source, parent_id=parent_id, report=batch.report)

    def ingest(self, name: str, file_path: str | os.PathLike, by: str = "user", progress: Progress | None = None,
               cancel_event: threading.Event | None = None) -> IngestResult:
        """A file becomes the project's next dataset version (any size: ml.ingest). progress hears
        how much of the file is read; setting cancel_event stops it with nothing stored (Cancelled)."""
        from app.core.ml.ingest import ingest_file

        project = self.project(name)
        staged = self._workspace.dataset_dir(name) / f".incoming-{os.getpid()}-{threading.get_ident()}.parquet.tmp"
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            stored = ingest_file(file_path, project.schema, staged,
                                 id_column=project.settings.id_column,
                                 progress=progress, cancel_event=cancel_event)
            return self._store_ingested(project, stored, staged, by, cancel_event)
        finally:
            staged.unlink(missing_ok=True)

    def _store_ingested(self, project: Project, stored: IngestedFile, staged: Path, by: str,
                        cancel_event: threading.Event | None) -> IngestResult:
        """The staged Parquet file renamed to the next version, and its rows, under the project lock."""
        with self.holding_project_lock(project.name):
            existing = self._registry.dataset_version_by_hash(project.id, stored.content_sha256)
            if existing:
                return IngestResult(dataset_version=existing.version, rows=existing.rows,
                                    labelled_rows=existing.labelled_rows,
                                    warnings=(*stored.warnings, f"{stored.source}: same content as dataset version "
                                                                f"{existing.version}; nothing stored"),
                                    duplicate_of=existing.version)
            version = self._registry.next_number("dataset_versions", project.id)
            parent_id = self._registry.latest_dataset_version_id(project.id)
            path = self._workspace.dataset_dir(project.name) / f"v{version}.parquet"
            with self._registry.files_then_rows() as files:
                if cancel_event is not None and cancel_event.is_set():
                    raise Cancelled("ingest cancelled; nothing was stored")
                install_staged([(staged, files.add(path))])  # renamed, and the rename synced
                with files.commit():
                    self._insert_dataset(project, stored, stored.content_sha256, path, version, parent_id, stored.source)
                    self._registry.add_event(project, "data_ingested",
                                            f"dataset v{version} from {stored.source}: {stored.rows} rows, "
                                            f"{stored.labelled_rows} labelled", by,
                                            {"dataset_version": version, "warnings": stored.warnings})
        return IngestResult(dataset_version=version, rows=stored.rows, labelled_rows=stored.labelled_rows,
                            warnings=tuple(stored.warnings), duplicate_of=None)

    def dataset_frame(self, name: str, version: int, rows: int | None = None) -> pd.DataFrame:
        return self._data.dataset_frame(name, version, rows)

    def training_frame(self, name: str, since_dataset_version: int | None = None) -> tuple[pd.DataFrame, list[int]]:
        """The project's training data (ProjectData.training_frame: the training window applied)."""
        return self._data.training_frame(name, since_dataset_version)

    def training_data(self, name: str, since_dataset_version: int | None = None) -> TrainingData:
        """ProjectData.training_data: the training window, sampled within the training memory budget."""
        return self._data.training_data(name, since_dataset_version)

    def labelled_rows(self, name: str) -> tuple[pd.DataFrame, SamplingRecord | None]:
        """ProjectData.labelled_rows: every labelled row, sampled within the training memory budget."""
        return self._data.labelled_rows(name)

    # ================================================================ training
    def train(self, name: str, by: str = "user", reason: str = "", progress: Progress | None = None,
              data: TrainingData | None = None, cancel_event: threading.Event | None = None) -> TrainResult:
        """Train a new version. data: rows to train on instead of the project's training window.
        cancel_event: fit in a child process that setting the event stops at once (nothing is saved)."""
        report = progress or _no_progress
        project = self.project(name)
        window: WindowParameters | None = None
        if data is None:
            data, window = self._training_data(project, cancel_event, lambda f, m: report(0.02 * f, m))
        sample = (f" (a sample of {data.sampling.of_rows:,}: the training memory budget is "
                  f"{data.sampling.memory_budget_mb:,} MB)" if data.sampling else "")
        report(0.02, f"preparing {len(data.frame)} rows{sample}")
        with self.holding_project_lock(name):
            training = self._new_training(project, data, by, reason, cancel_event, report)
            with self._registry.files_then_rows() as files:
                trained = self._fit(training, files)
                self._write_reference(training, trained.result, training.reference_path)
                files.add(training.reference_path)
                if cancel_event is not None and cancel_event.is_set():
                    raise Cancelled("training cancelled; nothing was saved")
                run_id = self._record_training(training, trained, files)
                if window is not None:
                    with self._registry.transaction():
                        self._registry.log_params(run_id, window.to_json())
        report(1.0, f"v{training.version} registered")
        return TrainResult(version=training.version, metrics=trained.result.metrics, run_id=run_id,
                           seconds=round(trained.seconds, 3))

    def _training_data(self, project: Project, cancel_event: threading.Event | None = None,
                       progress: Progress | None = None) -> tuple[TrainingData, WindowParameters | None]:
        """The project's training window. Under --window adaptive with a production model, the
        window the retraining policy would choose now (policy.training_window); the first model,
        with no change detected yet, trains on all rows."""
        settings = project.settings
        if settings.window == "adaptive" and self._registry.current_deployment(project.id) is not None:
            return self.policy.training_window(project, settings, cancel_event, progress)
        return self.training_data(project.name), None

    def _new_training(self, project: Project, data: TrainingData, by: str, reason: str,
                      cancel_event: threading.Event | None, report: Progress) -> _Training:
        """The next version's number and model path (under the project lock)."""
        version = self._registry.next_number("model_versions", project.id)
        model_path = self._workspace.artifact_dir(project.name) / f"v{version}.skops"
        if model_path.exists():
            # no registry row names this version (it is MAX + 1): a file left by a train that was
            # killed between writing it and committing (a GUI cancel terminates the process).
            # Refusing here blocked every later train of the project; keep it aside, never delete.
            orphan = model_path.with_name(f"{model_path.name}.orphan-{self._clock.local_stamp()}-{os.getpid()}")
            os.replace(model_path, orphan)
            log.warning("%s was not registered (an interrupted train); moved aside to %s", model_path, orphan.name)
        return _Training(project=project, settings=project.settings, version=version,
                         data=data, model_path=model_path, by=by, reason=reason, cancel_event=cancel_event,
                         report=report)

    def _fit(self, training: _Training, files: NewFiles) -> _TrainedModel:
        """Fit and evaluate, and write the model file (listed in files)."""
        from app.core.ml import artifacts
        from app.core.ml import training as ml

        started_at, started = self._clock(), time.perf_counter()
        settings, schema, frame = training.settings, training.project.schema, training.data.frame
        if training.cancel_event is None:
            result = ml.fit_and_evaluate(frame, schema, settings.preset, settings.params, settings.seed,
                                         settings.cv_folds, progress=training.report,
                                         refit_on_all_rows=training.data.refit_on_all_rows)
            sha256 = artifacts.dump_model(result.pipeline, training.model_path)
            files.add(training.model_path)
        else:  # the child writes the model file: a cancel kills it, never a half-written file
            partial = files.add(training.model_path.with_name(f".{training.model_path.name}.{os.getpid()}.partial"))
            result = ml.fit_cancellable(frame, schema, settings.preset, settings.params, settings.seed,
                                        settings.cv_folds, partial, cancel_event=training.cancel_event,
                                        progress=training.report,
                                        refit_on_all_rows=training.data.refit_on_all_rows)
            if training.model_path.exists():
                raise KeelError(f"{training.model_path} already exists; Keel never overwrites a model file")
            os.replace(partial, training.model_path)
            files.add(training.model_path)
            sha256 = (artifacts.dump_model(result.pipeline, training.model_path) if result.pipeline is not None
                      else sha256_file(training.model_path))
        return _TrainedModel(result=result, sha256=sha256, started_at=started_at,
                             seconds=time.perf_counter() - started)

    def _write_reference(self, training: _Training, result: FitResult, path: Path) -> None:
        """Training rows (sampled) and hold-out rows: the drift reference and the calibration set. A model
        refitted on all rows saw its hold-out rows: they keep the evaluated fit's probabilities (the
        calibration set), or, with none to keep, are marked "refit" (no calibration on them)."""
        import pandas as pd

        from app.core.ml import datasets

        schema, frame, seed = training.project.schema, training.data.frame, training.settings.seed
        labelled = frame[frame[schema.target].notna()].reset_index(drop=True)
        test_positions = result.extra.get("test_positions", [])
        proba = result.extra.get("holdout_proba")
        refit = bool(result.params.get("refit_on_all_rows"))
        if refit and result.extra.get("holdout_classes") != result.classes:
            proba = None  # the refit learned another set of classes: the stored columns would not match
        split = pd.Series("train", index=labelled.index)
        split.iloc[test_positions] = "refit" if refit and proba is None else "holdout"
        reference = labelled.assign(__split__=split.to_numpy())
        holdout = reference.iloc[test_positions]
        if refit and proba is not None:
            holdout = holdout.assign(**{datasets.holdout_proba_column(k): proba[:, k] for k in range(proba.shape[1])})
        train_part = reference[reference["__split__"] == "train"]
        if len(train_part) > REFERENCE_TRAIN_ROWS:
            train_part = train_part.sample(REFERENCE_TRAIN_ROWS, random_state=seed)
        reference = pd.concat([train_part, holdout], ignore_index=True)
        stored = datasets.to_storage_frame(reference, schema)
        probability_columns = [c for c in reference.columns if datasets.is_holdout_proba_column(c)]
        stored = stored.assign(**{c: reference[c].astype(float) for c in probability_columns})
        datasets.write_frame(stored.assign(__split__=reference["__split__"].to_numpy()), path)

    def _record_training(self, training: _Training, trained: _TrainedModel, files: NewFiles) -> int:
        from app.core.ml import training as ml

        registry, project, settings, result = self._registry, training.project, training.settings, trained.result
        seed, used, version = settings.seed, training.data.dataset_versions, training.version
        with files.commit():
            run_id = registry.insert_run(
                project.id, "train", preset=settings.preset, seed=seed, started_at=trained.started_at,
                finished_at=self._clock(), seconds=trained.seconds, dataset_versions=used,
                library_versions=result.library_versions or ml.library_versions())
            registry.log_params(run_id, {**result.params, "seed": seed, "train_rows": result.train_rows,
                                         "test_rows": result.test_rows, "fit_seconds": round(result.fit_seconds, 4),
                                         **({"training_sample": training.data.sampling.to_json()} if training.data.sampling else {})})
            registry.log_metrics(run_id, [(k, v, 0) for k, v in result.metrics.items()])
            registry.insert_model_version(
                project_id=project.id, version=version, run_id=run_id,
                artifact_path=str(training.model_path.relative_to(self._workspace.root)), sha256=trained.sha256)
            metric = project.metric
            registry.add_event(project, "model_trained",
                               f"v{version} trained ({settings.preset}): {metric} {result.metrics.get(metric, float('nan')):.4f}"
                               + (f" — {training.reason}" if training.reason else ""),
                               training.by, {"version": version, "run_id": run_id, "metrics": result.metrics,
                                             "dataset_versions": used, "seed": seed})
        return run_id

    # ================================================================ models
    def model_metrics(self, model_version: ModelVersion) -> dict[str, float]:
        return self._data.model_metrics(model_version)

    def load_version(self, name: str, version: int) -> LoadedModel:
        return self._data.load_version(name, version)

    def production_version(self, name: str) -> int | None:
        return self._data.production_version(name)

    def load_production(self, name: str) -> LoadedModel:
        return self._data.load_production(name)

    def reference_frame(self, name: str, version: int) -> pd.DataFrame | None:
        return self._data.reference_frame(name, version)

    def import_model(self, name: str, file_path: str | os.PathLike, accept_types: list[str] | None = None,
                     by: str = "user", notes: str = "") -> ImportedModel:
        """Register a scikit-learn model trained elsewhere (a skops file) as a new version."""
        from app.core.ml import artifacts, datasets, training

        project = self.project(name)
        source = Path(file_path)
        datasets.check_readable_file(source)
        accepted = sorted(set(accept_types or []))
        model = artifacts.load_untrusted_for_import(source, accepted)
        if not hasattr(model, "predict"):
            raise ValidationError(f"{source.name}: the object is a {type(model).__name__}, not a model with predict()")
        frame, _ = self.training_frame(name)
        labelled = frame[frame[project.target].notna()]
        X = datasets.to_model_frame(labelled, project.schema)
        y = datasets.target_array(labelled, project.schema)
        try:
            metrics = training.evaluate_pipeline(model, project.task, X, y)
        except Exception as exc:
            raise ValidationError(f"{source.name}: the model cannot score this project's data ({exc})") from None
        with self.holding_project_lock(name):
            version = self._registry.next_number("model_versions", project.id)
            final_path = self._workspace.artifact_dir(name) / f"v{version}.skops"
            with self._registry.files_then_rows() as files:
                with atomic_path(final_path) as tmp:
                    shutil.copyfile(source, tmp)
                sha256 = sha256_file(files.add(final_path))
                with files.commit():
                    now = self._clock()
                    run_id = self._registry.insert_run(project.id, "import", preset="imported", seed=None,
                                                      started_at=now, finished_at=now, seconds=0.0,
                                                      library_versions=training.library_versions())
                    self._registry.log_params(run_id, {"source": str(source), "accepted_types": accepted})
                    self._registry.log_metrics(run_id, [(k, v, 0) for k, v in metrics.items()])
                    self._registry.insert_model_version(
                        project_id=project.id, version=version, run_id=run_id,
                        artifact_path=str(final_path.relative_to(self._workspace.root)), sha256=sha256,
                        extra_trusted_types=accepted, notes=notes or f"imported from {source.name}")
                    self._registry.add_event(project, "model_imported", f"v{version} imported from {source.name}", by,
                                            {"version": version, "accepted_types": accepted, "metrics": metrics})
        return ImportedModel(version=version, metrics=metrics, accepted_types=tuple(accepted))

    def export_model(self, name: str, version: int, destination: str | os.PathLike) -> ExportedModel:
        loaded = self.load_version(name, version)  # verifies hash and types before handing the file out
        source = self._workspace.root / loaded.model_version.artifact_path
        destination = check_output_path(self._workspace.root, destination)
        if destination.is_dir():
            destination = destination / f"{name}-v{version}.skops"
        with user_output(self._workspace.root, destination) as tmp:
            shutil.copyfile(source, tmp)
        with self._registry.transaction():
            self._registry.add_event(loaded.project, "model_exported", f"v{version} exported to {destination}", "user")
        return ExportedModel(version=version, path=str(destination), sha256=loaded.model_version.sha256)

    def archive_version(self, name: str, version: int, archived: bool = True, by: str = "user") -> None:
        project = self.project(name)
        model_version = self._registry.model_version(project.id, version)
        with self.holding_project_lock(name):  # the production check and the write, with no deploy in between
            if archived and self.production_version(name) == version:
                raise KeelError(f"v{version} is the production model of {name!r}; deploy another version before archiving it")
            with self._registry.transaction():
                self._registry.set_archived(model_version.id, archived)
                self._registry.add_event(project, "model_archived" if archived else "model_unarchived",
                                        f"v{version} {'archived' if archived else 'restored'}", by)

    # ================================================================ deployment
    def deploy(self, name: str, version: int, by: str = "user", reason: str = "") -> ProductionChange:
        with self.holding_project_lock(name):
            return self.deploy_holding_lock(name, version, by, reason)

    def deploy_holding_lock(self, name: str, version: int, by: str = "user", reason: str = "",
                            extra_transaction_work: Callable[[Project], None] | None = None) -> ProductionChange:
        """deploy() for a caller that already holds the project lock (project_lock is a flock: it
        cannot be taken twice). extra_transaction_work(project), if given, runs inside the
        deployment's transaction, so its writes commit or roll back with it."""
        loaded = self._data.load_version(name, version)  # never deploy a file that will not load
        project = loaded.project
        current = self._registry.current_deployment(project.id)
        previous_version = current.version if current else None
        reason = reason or ("deployed by the user" if by == "user" else "deployed by the policy")
        message = (f"v{version} deployed to production" + (f" (was v{previous_version})" if previous_version else "")
                   + f": {reason}")

        def record() -> None:
            self._registry.insert_deployment(project_id=project.id, model_version_id=loaded.model_version.id,
                                             replaced_deployment_id=current.id if current else None,
                                             by=by, reason=reason, is_rollback=0)
            self._registry.add_event(project, "deployed", message, by,
                                     {"version": version, "previous_version": previous_version})
            if extra_transaction_work is not None:
                extra_transaction_work(project)

        self._move_production(loaded, record)
        self._prepare_drift_reference(loaded)
        return ProductionChange(production_version=version, previous_version=previous_version)

    def _move_production(self, loaded: LoadedModel, record: Callable[[], None]) -> None:
        """Make a loaded version the production model in one transaction: the aliases point at it,
        record() writes the deployment row and its audit event, and production.json is staged, then
        installed once the rows are committed (discarded if anything fails)."""
        staged = []
        try:
            with self._registry.transaction():
                self._set_production_aliases(loaded.project, loaded.model_version.id)
                record()
                staged = self._stage_manifest(loaded.project)
        except BaseException:
            discard_staged(staged)
            raise
        self._install_manifest(staged)

    def _prepare_drift_reference(self, loaded: LoadedModel) -> None:
        """The production model's drift reference, prepared now and stored beside its model file, so
        that no monitoring cycle predicts the reference rows again. Derived data: a failure here leaves
        the committed deployment alone and monitoring prepares it on its first cycle instead."""
        try:
            self.monitoring.reference_for(loaded)
        except Exception:  # noqa: BLE001 - the deployment is committed; monitoring retries
            log.warning("drift reference of %s v%s not prepared at deployment", loaded.project.name,
                        loaded.version, exc_info=True)

    def _set_production_aliases(self, project: Project, model_version_id: int) -> None:
        self._registry.set_alias(project.id, "champion", model_version_id)
        # a waiting challenger was gated against the production model of its time: once another
        # model is in production that verdict says nothing, and approving it would deploy a model
        # never compared with the current one (a stale challenger also blocked every policy retrain)
        self._registry.set_alias(project.id, "challenger", None)

    def rollback(self, name: str, by: str = "user", reason: str = "", to_version: int | None = None) -> ProductionChange:
        """Go back to the previous production model (or to an earlier deployed version)."""
        with self.holding_project_lock(name):
            project = self.project(name)
            current = self._registry.current_deployment(project.id)
            if current is None:
                raise KeelError(f"project {name!r} has no production model yet; nothing to roll back")
            target = self._rollback_target(project, current, to_version)
            loaded = self._data.load_version(name, target.version)
            reason = reason or f"rolled back from v{current.version}"

            def record() -> None:
                self._registry.insert_deployment(
                    project_id=project.id, model_version_id=target.model_version_id,
                    replaced_deployment_id=target.replaced_deployment_id, by=by, reason=reason, is_rollback=1)
                self._registry.add_event(project, "rolled_back",
                                         f"rolled back from v{current.version} to v{target.version}: {reason}",
                                         by, {"version": target.version, "previous_version": current.version})

            self._move_production(loaded, record)
        self._prepare_drift_reference(loaded)
        return ProductionChange(production_version=target.version, previous_version=current.version)

    def rollback_target(self, name: str) -> Deployment | None:
        """The deployment a plain rollback returns to (None: nothing in production, or only its first model)."""
        project = self.project(name)
        current = self._registry.current_deployment(project.id)
        return self._previous_deployment(current) if current else None

    def _previous_deployment(self, current: Deployment) -> Deployment | None:
        return self._registry.deployment(current.replaced_deployment_id) if current.replaced_deployment_id else None

    def _rollback_target(self, project: Project, current: Deployment, to_version: int | None) -> Deployment:
        if to_version is None:
            target = self._previous_deployment(current)
            if target is None:
                raise KeelError(f"v{current.version} is the first production model of {project.name!r}; "
                                "there is nothing to roll back to")
            return target
        earlier = [d for d in self._registry.deployments(project.id) if d.version == to_version]
        if not earlier:
            raise KeelError(f"v{to_version} was never in production for {project.name!r}; use deploy instead")
        return earlier[-1]

    def rewrite_production_manifest(self, name: str) -> None:
        """Write production.json again from the registry (verify --repair, restore)."""
        with self.holding_project_lock(name):
            self._replace_manifest(self.project(name))

    def _manifest(self, project: Project) -> dict | None:
        """What production.json must say: the registry's current deployment (the source of truth)."""
        deployment = self._registry.current_deployment(project.id)
        if deployment is None:
            return None
        model_version = self._registry.model_version_by_id(deployment.model_version_id)
        return {"project": project.name, "version": deployment.version, "sha256": model_version.sha256,
                "artifact_path": model_version.artifact_path, "deployed_at": deployment.deployed_at,
                "by": deployment.by, "reason": deployment.reason}

    def _stage_manifest(self, project: Project) -> list[tuple[Path, Path]]:
        """Inside a deployment's transaction, before its commit: the new production.json (and the
        old one as production.previous.json) written to synced temporary files, so that a full disk
        fails the deployment as a whole. _install_manifest renames them after the commit; a process
        killed in between leaves a stale manifest, rewritten when the workspace next opens."""
        manifest = self._manifest(project)
        if manifest is None:
            return []
        path = self._workspace.manifest_path(project.name)
        pairs = []
        if path.exists():
            pairs.append((path.with_name("production.previous.json"), path.read_bytes()))
        pairs.append((path, json.dumps(manifest, indent=2).encode()))
        staged = []
        try:
            for final, data in pairs:
                staged.append((stage_bytes(final, data), final))
        except BaseException:
            discard_staged(staged)
            raise
        return staged

    def _install_manifest(self, staged: list[tuple[Path, Path]]) -> None:
        install_staged(staged)

    def refresh_manifests(self) -> list[str]:
        """Rewrite every production.json that disagrees with the registry (a process killed
        between the commit and the manifest write leaves it stale). Returns the projects fixed.
        A project busy in another process is skipped: its writer rewrites the manifest itself."""
        fixed = []
        for project in self._registry.projects():
            if self._manifest_matches(project):
                continue
            lock = FileLock(self._workspace.project_lock_path(project.name))
            if not lock.try_acquire():
                continue
            try:
                if not self._manifest_matches(project):  # again, under the lock
                    self._replace_manifest(project)
                    fixed.append(project.name)
            finally:
                lock.release()
        return fixed

    def _manifest_matches(self, project: Project) -> bool:
        """Whether production.json says what the registry does. With nothing deployed any
        manifest is left alone: a stray one is verify's to quarantine."""
        expected = self._manifest(project)
        if expected is None:
            return True
        path = self._workspace.manifest_path(project.name)
        try:
            on_disk = json.loads(path.read_text())
        except FileNotFoundError:
            on_disk = None
        except (OSError, ValueError):
            return False
        return on_disk == expected

    def _replace_manifest(self, project: Project) -> None:
        manifest = self._manifest(project)
        if manifest is not None:
            write_text_atomic(self._workspace.manifest_path(project.name), json.dumps(manifest, indent=2))

    # ================================================================ scoring
    def score_frame(self, loaded: LoadedModel, raw: datasets.RawTable) -> tuple[pd.DataFrame, list[str]]:
        """Predictions (and class probabilities) for a raw table, plus the cleaning warnings."""
        out, warnings, _ = self._score(loaded, raw)
        return out, warnings

    def _score(self, loaded: LoadedModel, raw: datasets.RawTable) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
        """(scores, warnings, the model's input)."""
        import pandas as pd

        from app.core.ml import datasets
        from app.core.ml.childproc import capped_native_threads

        schema = loaded.project.schema
        id_column = loaded.project.settings.id_column
        batch = datasets.clean(raw, schema, purpose="predict", id_column=id_column)  # the ID: no "extra column"
        X = datasets.to_model_frame(batch.frame, schema)
        with capped_native_threads():
            predictions = loaded.model.predict(X)
            probabilities = (loaded.model.predict_proba(X) if hasattr(loaded.model, "predict_proba")
                             and loaded.project.task == "classification" else None)
        out = pd.DataFrame({"prediction": predictions}, index=X.index)
        if probabilities is not None:
            for index, label in enumerate(loaded.model.classes_):
                out[f"proba_{label}"] = probabilities[:, index]
        return out, batch.warnings, X

    def predict(self, name: str, input_path: str | os.PathLike, output_path: str | os.PathLike) -> PredictResult:
        """Score a file. With an ID column (or the prediction log on) every output row carries an ID:
        the file's own, or one Keel assigns; the rows are recorded in the prediction log."""
        import pandas as pd

        from app.core.ml import datasets
        from app.core.services import prediction_log

        output_path = check_output_path(self._workspace.root, output_path)
        loaded = self.load_production(name)
        policy = prediction_log.LogPolicy.of(loaded.project.settings)
        raw = datasets.read_table(input_path)
        scores, warnings, X = self._score(loaded, raw)
        output_path = Path(output_path)
        # a file scored before already has these columns: replace them rather than duplicate them
        replaced = [c for c in scores.columns if c in raw.frame.columns]
        if replaced:
            warnings = warnings + [f"{raw.source}: column(s) {', '.join(replaced)} replaced by this scoring"]
        inputs = raw.frame.drop(columns=replaced).reset_index(drop=True)
        id_column, ids, assigned = None, None, 0
        if policy.returns_ids:
            id_column = policy.id_column or prediction_log.ASSIGNED_ID_COLUMN
            given = datasets.id_text(inputs[id_column]).tolist() if id_column in inputs.columns else None
            ids = prediction_log.complete_ids(given, len(inputs))
            assigned = len(ids) if given is None else sum(1 for g in given if g is None)
            inputs[id_column] = ids
        result = pd.concat([inputs, scores.reset_index(drop=True)], axis=1)
        with user_output(self._workspace.root, output_path) as tmp:
            if output_path.name.lower().endswith(datasets.PARQUET_SUFFIXES):
                result.to_parquet(tmp, index=False)
            else:
                result.to_csv(tmp, index=False)
        logged = 0
        if policy.enabled:
            assert ids is not None  # a project that logs its traffic returns IDs
            proba_columns = [c for c in scores.columns if c.startswith("proba_")]
            logged = prediction_log.record(self._registry, loaded.project, loaded.model_version.id, ids,
                                           X.reset_index(drop=True), scores["prediction"].tolist(),
                                           scores[proba_columns].to_numpy() if proba_columns else None,
                                           clock=self._clock)
        with self._registry.transaction():
            self._registry.add_event(loaded.project, "batch_scored",
                                    f"{len(result)} rows of {raw.source} scored with v{loaded.version}"
                                    + (f"; {logged} recorded in the prediction log" if logged else ""), "user",
                                    {"output": str(output_path), "version": loaded.version, "logged_rows": logged})
        return PredictResult(rows=len(result), output=str(output_path), version=loaded.version,
                             warnings=tuple(warnings), id_column=id_column, assigned_ids=assigned, logged_rows=logged)

    # ================================================================ reports
    def status(self, name: str, limit: int | None = None) -> ProjectStatus:
        """limit=N: only the newest N model versions and dataset versions (still oldest first);
        versions_total and dataset_versions_total count them all."""
        from app.core.services import prediction_log

        project = self.project(name)
        production = self.production_version(name)
        versions = tuple(VersionStatus(version=model_version.version, created_at=model_version.created_at,
                                       metrics=self.model_metrics(model_version), aliases=model_version.aliases,
                                       in_production=model_version.version == production,
                                       archived=model_version.archived, notes=model_version.notes)
                         for model_version in self._registry.model_versions(project.id, newest=limit))
        datasets = tuple(DatasetStatus(version=d.version, rows=d.rows, labelled_rows=d.labelled_rows, source=d.source,
                                       created_at=d.created_at)
                         for d in self._registry.dataset_versions(project.id, newest=limit))
        counts = self._registry.version_counts(project.id)
        last = self._registry.last_monitor_result(project.id)
        return ProjectStatus(
            project=name, task=project.task, target=project.target, metric=project.metric,
            production_version=production, versions=versions, dataset_versions=datasets,
            last_monitoring=None if last is None else LastMonitoring(at=last.at, metric=last.metric, value=last.value,
                                                                     estimated_value=last.estimated_value),
            open_alerts=tuple(self._registry.open_alerts(project.id)), settings=project.settings,
            prediction_log=prediction_log.summary(self._registry, project),
            versions_total=counts.model_versions, dataset_versions_total=counts.dataset_versions)

    def model_timeline(self, name: str) -> list[ModelMark]:
        """When each model version was made, oldest first, for a timeline's markers; a light read
        (status() also gathers metrics, datasets, alerts and the prediction log)."""
        return [ModelMark(version=model.version, created_at=model.created_at)
                for model in self._registry.model_versions(self.project(name).id)]

    def production_overview(self, name: str) -> ProductionOverview:
        """What the production actions depend on: the version in production (or None), how many
        deployments there were, the version a rollback returns to, and whether a challenger waits."""
        project = self.project(name)
        current = self._registry.current_deployment(project.id)
        target = self._previous_deployment(current) if current else None
        return ProductionOverview(project=name, production_version=current.version if current else None,
                                  deployments=len(self._registry.deployments(project.id)),
                                  rollback_version=target.version if target else None,
                                  challenger_waiting="challenger" in self._registry.aliases(project.id))

    def current_deployment(self, name: str) -> Deployment | None:
        return self._registry.current_deployment(self.project(name).id)

    def deployment_in_production(self, project_id: int) -> Deployment | None:
        """By the project's id, not its name: a server follows the project it started on, and a project
        deleted and created again under the same name is another one (its answer is None)."""
        return self._registry.current_deployment(project_id)

    def deployments(self, name: str) -> list[Deployment]:
        """Every deployment (and rollback) of the project, oldest first, with its model version number."""
        return self._registry.deployments(self.project(name).id)

    def model_version_by_id(self, model_version_id: int) -> ModelVersion:
        return self._registry.model_version_by_id(model_version_id)

    def dataset_versions(self, name: str) -> list[DatasetVersion]:
        return self._registry.dataset_versions(self.project(name).id)

    def monitor_results(self, name: str, after_id: int = 0) -> list[MonitorResult]:
        return self._registry.monitor_results(self.project(name).id, after_id=after_id)

    def policy_decisions(self, name: str, after_id: int = 0) -> list[PolicyDecision]:
        """The retraining policy's decisions, oldest first."""
        from app.core.store.policy_state import decision_events

        return decision_events(self._registry, self.project(name).id, after_id)

    def schedule(self, name: str) -> Schedule | None:
        return self._registry.schedule(self.project(name).id)

    def schedules(self) -> list[Schedule]:
        """Every project's monitoring schedule, by project name."""
        return self._registry.schedules()

    def record_scheduled_run(self, name: str) -> bool:
        """Note that the schedule of `name` fired. -> whether there is a production model to monitor
        (False also when the project is gone)."""
        project = self.find_project(name)
        if project is None:
            return False
        self._registry.mark_schedule_run(project.id)
        return self._registry.current_deployment(project.id) is not None

    def prediction_log_writer(self) -> PredictionLogWriter:
        """The server's prediction log: request threads add, a background thread commits (stop() flushes)."""
        from app.core.services import prediction_log

        return prediction_log.PredictionLogWriter(self._registry, clock=self._clock)

    def alerts(self, name: str) -> list[Alert]:
        return self._registry.alerts(self.project(name).id)

    def open_alerts_after(self, alert_id: int) -> list[AlertNotice]:
        """Open alerts of every project newer than alert_id, oldest first."""
        return self._registry.open_alerts_after(alert_id)

    def last_alert_id(self) -> int:
        return self._registry.last_alert_id()

    def events(self, name: str) -> list[Event]:
        """The project's audit log, oldest first."""
        return self._registry.events(self.project(name).id)

    def recent_events(self, name: str, limit: int = RECENT_EVENTS) -> list[Event]:
        return self._registry.recent_events(self.project(name).id, limit)

    def history(self, name: str, limit: int | None = None) -> History:
        """The audit log, oldest first; limit=N: its newest N events only."""
        return History(project=name, events=tuple(self._registry.events(self.project(name).id, newest=limit)))

    def acknowledge_alert(self, name: str, alert_id: int, by: str = "user") -> None:
        project = self.project(name)
        alert = self._registry.alert(project.id, alert_id)
        if alert is None:
            raise NotFoundError(f"unknown alert {alert_id} for project {name!r}")
        with self._registry.transaction():
            # re-read under the write lock: a monitoring cycle may have closed it (recovered) meanwhile,
            # and the audit log must not say "acknowledged" for an alert that was not
            status = self._registry.alert_status(alert_id)
            if status != "open":
                raise KeelError(f"alert {alert_id} ({alert.rule}) is already {status}; nothing to acknowledge")
            self._registry.close_alert(alert_id, "acknowledged")
            self._registry.add_event(project, "alert_acknowledged", f"alert {alert_id} ({alert.rule}) acknowledged", by)
