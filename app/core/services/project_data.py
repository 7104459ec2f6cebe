"""The reads every service shares: a project's row, its data as frames, its models loaded.

Built on the registry and the workspace alone, so that the monitoring, policy, insights and
traffic services can be given it instead of the lifecycle service (which keeps the writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.domain.entities import DatasetVersion, ModelVersion, Project
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

    def dataset_frame(self, name: str, version: int) -> pd.DataFrame:
        from app.core.ml import datasets

        project = self.project(name)
        row = self._registry.dataset_version(project.id, version)
        if row is None:
            raise NotFoundError(f"unknown dataset version {version} of project {name!r}")
        return datasets.read_frame(self._workspace.root / row.path)

    def training_frame(self, name: str, since_dataset_version: int | None = None) -> tuple[pd.DataFrame, list[int]]:
        """The project's training data: labelled rows of its dataset versions, oldest first,
        limited by the training window (all rows, the newest N rows, or adaptive: since the
        latest detected change)."""
        import pandas as pd

        from app.core.ml import datasets

        project = self.project(name)
        settings = ProjectSettings.from_dict(project.settings)
        if since_dataset_version is None and settings.window == "adaptive":
            since_dataset_version = read_policy_state(self._registry, project.id).change_point
        target = project.target
        frames, used = [], []
        for row in self._registry.dataset_versions(project.id):
            if row.labelled_rows == 0:
                continue
            if since_dataset_version is not None and row.version < since_dataset_version:
                continue
            frame = datasets.read_frame(self._workspace.root / row.path)
            frames.append(frame[frame[target].notna()])
            used.append(row.version)
        if not frames:
            if since_dataset_version is not None:
                raise ValidationError(
                    f"project {name!r} has no labelled data from dataset v{since_dataset_version} on "
                    + ("(the adaptive training window starts at the change detected there); ingest labelled data "
                       "or set --window all" if settings.window == "adaptive" else "to train on"))
            raise ValidationError(f"project {name!r} has no labelled data to train on")
        combined = pd.concat(frames, ignore_index=True)
        if isinstance(settings.window, int) and len(combined) > settings.window:
            combined = combined.iloc[-settings.window:].reset_index(drop=True)
        return combined, used

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
