"""The reads every service shares: a project's row, its data as frames, its models loaded.

Built on the registry and the workspace alone, so that the monitoring, policy, insights and
traffic services can be given it instead of the lifecycle service (which keeps the writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.decisions import SamplingRecord
from app.core.domain.entities import DatasetVersion, ModelVersion, Project, TrainingData
from app.core.domain.errors import KeelError, NotFoundError, ValidationError
from app.core.domain.settings import ProjectSettings
from app.core.store.policy_state import read_policy_state
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

if TYPE_CHECKING:  # pandas and the ML modules load on first use: read-only commands never need them
    import pandas as pd


@dataclass
class LoadedModel:
    project: Project
    model_version: ModelVersion
    model: Any  # a fitted scikit-learn estimator (Keel's own: a Pipeline)

    @property
    def version(self) -> int:
        return self.model_version.version


class ProjectData:
    """A workspace's projects, dataset versions and model versions, read (never written)."""

    def __init__(self, registry: Registry, workspace: Workspace):
        self._registry = registry
        self._workspace = workspace

    # ---------------------------------------------------------------- projects
    def project(self, name: str) -> Project:
        return self._registry.project(name)

    def production_version(self, name: str) -> int | None:
        deployment = self._registry.current_deployment(self.project(name).id)
        return deployment.version if deployment else None

    # ---------------------------------------------------------------- data
    def dataset_versions(self, name: str) -> list[DatasetVersion]:
        return self._registry.dataset_versions(self.project(name).id)

    def dataset_frame(self, name: str, version: int, rows: int | None = None) -> pd.DataFrame:
        """A dataset version's rows as stored; rows: its first rows only (a preview of a large version)."""
        from app.core.ml import datasets

        project = self.project(name)
        row = self._registry.dataset_version(project.id, version)
        if row is None:
            raise NotFoundError(f"unknown dataset version {version} of project {name!r}")
        return datasets.read_frame(self._workspace.root / row.path, rows)

    def dataset_path(self, name: str, version: int) -> Path:
        """Where a dataset version's rows are stored (read them with app.core.ml.batch_reading)."""
        project = self.project(name)
        row = self._registry.dataset_version(project.id, version)
        if row is None:
            raise NotFoundError(f"unknown dataset version {version} of project {name!r}")
        return self._workspace.root / row.path

    def batch_within_budget(self, name: str, version: int,
                            labelled_only: bool = False) -> tuple[pd.DataFrame, SamplingRecord | None]:
        """A dataset version's rows (labelled_only: its labelled rows), or a seeded sample of them read piece
        by piece where they would take more than the memory budget; with the sample's record (None: all).
        Monitoring and the policy's scoring of one batch keep the same rows."""
        from app.core.ml import batch_reading

        project = self.project(name)
        row = self._registry.dataset_version(project.id, version)
        if row is None:
            raise NotFoundError(f"unknown dataset version {version} of project {name!r}")
        seed = project.settings.seed + version
        return batch_reading.read_within_budget(self._workspace.root / row.path, project.schema, row.rows, seed,
                                                labelled_only)

    def training_frame(self, name: str, since_dataset_version: int | None = None) -> tuple[pd.DataFrame, list[int]]:
        """The project's training rows and the dataset versions they come from (see training_data)."""
        data = self.training_data(name, since_dataset_version)
        return data.frame, data.dataset_versions

    def training_data(self, name: str, since_dataset_version: int | None = None) -> TrainingData:
        """The project's training data: labelled rows of its dataset versions, oldest first,
        limited by the training window (all rows, the newest N rows, or adaptive: since the
        latest detected change). Rows that would take more than the training memory budget
        ($KEEL_TRAIN_MEMORY_MB) are sampled, each version read batch by batch: data.sampling says so."""
        import pandas as pd

        from app.core.ml import datasets

        project = self.project(name)
        settings = project.settings
        if since_dataset_version is None and settings.window == "adaptive":
            since_dataset_version = read_policy_state(self._registry, project.id).change_point
        chosen = self._training_versions(project, settings, since_dataset_version)
        wanted = sum(row.labelled_rows for row in chosen)
        if isinstance(settings.window, int):
            wanted = min(wanted, settings.window)
        budget = datasets.train_memory_bytes()
        share = min(1.0, budget / max(1, wanted * datasets.training_bytes_per_row(project.schema)))
        frames = [datasets.read_labelled_rows(self._workspace.root / row.path, project.target, share,
                                              settings.seed + row.version) for row in chosen]
        combined = pd.concat(frames, ignore_index=True)
        if isinstance(settings.window, int):
            newest = settings.window if share >= 1 else int(settings.window * share)
            if len(combined) > newest:
                combined = combined.iloc[-newest:].reset_index(drop=True)
        sampling = None if share >= 1 else SamplingRecord(len(combined), of_rows=wanted,
                                                          memory_budget_mb=round(budget / 2**20))
        return TrainingData(combined, [row.version for row in chosen], sampling)

    def labelled_rows(self, name: str) -> tuple[pd.DataFrame, SamplingRecord | None]:
        """Every labelled row of the project, oldest first, with its dataset version in `__version__`,
        and how they were sampled to fit the training memory budget (None: all of them)."""
        import pandas as pd

        from app.core.ml import datasets

        project = self.project(name)
        seed = project.settings.seed
        chosen = [row for row in self._registry.dataset_versions(project.id) if row.labelled_rows]
        if not chosen:
            raise ValidationError(f"project {name!r} has no labelled data to train on")
        wanted = sum(row.labelled_rows for row in chosen)
        budget = datasets.train_memory_bytes()
        share = min(1.0, budget / max(1, wanted * datasets.training_bytes_per_row(project.schema)))
        frames = [datasets.read_labelled_rows(self._workspace.root / row.path, project.target, share,
                                              seed + row.version).assign(__version__=row.version)
                  for row in chosen]
        combined = pd.concat(frames, ignore_index=True)
        sampling = None if share >= 1 else SamplingRecord(len(combined), of_rows=wanted,
                                                          memory_budget_mb=round(budget / 2**20))
        return combined, sampling

    def _training_versions(self, project: Project, settings: ProjectSettings,
                           since_dataset_version: int | None) -> list[DatasetVersion]:
        """The dataset versions a training reads: labelled, in the window (with a row window of N: the
        newest versions that hold N rows)."""
        chosen = [row for row in self._registry.dataset_versions(project.id) if row.labelled_rows
                  and (since_dataset_version is None or row.version >= since_dataset_version)]
        if isinstance(settings.window, int):
            needed, newest = settings.window, list[DatasetVersion]()
            for row in reversed(chosen):
                if needed <= 0:
                    break
                newest.insert(0, row)
                needed -= row.labelled_rows
            chosen = newest
        if not chosen:
            name = project.name
            if since_dataset_version is not None:
                raise ValidationError(
                    f"project {name!r} has no labelled data from dataset v{since_dataset_version} on "
                    + ("(the adaptive training window starts at the change detected there); ingest labelled data "
                       "or set --window all" if settings.window == "adaptive" else "to train on"))
            raise ValidationError(f"project {name!r} has no labelled data to train on")
        return chosen

    # ---------------------------------------------------------------- models
    def model_metrics(self, model_version: ModelVersion) -> dict[str, float]:
        return self._registry.run_metrics(model_version.run_id) if model_version.run_id else {}

    def load_version(self, name: str, version: int) -> LoadedModel:
        from app.core.ml import artifacts

        project = self.project(name)
        model_version = self._registry.model_version(project.id, version)
        model = artifacts.load_model(self._workspace.root / model_version.artifact_path, model_version.sha256,
                                     model_version.extra_trusted_types)
        return LoadedModel(project, model_version, model)

    def load_production(self, name: str) -> LoadedModel:
        version = self.production_version(name)
        if version is None:
            raise KeelError(f"project {name!r} has no production model yet (deploy a version first)")
        return self.load_version(name, version)

    def reference_frame(self, name: str, version: int) -> pd.DataFrame | None:
        from app.core.ml import datasets

        project = self.project(name)
        model_version = self._registry.model_version(project.id, version)
        path = (self._workspace.root / model_version.artifact_path).with_suffix(".reference.parquet")
        return datasets.read_frame(path) if path.exists() else None
