"""What each service is given (its dependencies, built once per workspace), and where that is wired up.

A service is an object (InboxService, PolicyService, ...) that Keel builds once per workspace and
hands its dependencies: the registry (every read and write of the store), the workspace (its files
and its locks), the shared reads (ProjectData), the clock, and the few lifecycle actions it needs,
as callables (the policy deploys; the inbox ingests). A service that owns its rules (the policy)
takes each of them as a constructor argument, the other services it calls among them; the
others still hold a bundle of them (below) and hand it to their module's functions. No service is
handed the lifecycle service (Keel) or reaches into another service's private functions;
tests/test_layer_boundaries.py checks it.

ServiceDependencies, built by Keel for its workspace (Keel._services, private), makes each
service's dependencies on first use and keeps them, with the caches they share (bounded). The
service modules themselves are imported on first use: the policy's and monitoring's load pandas
and scikit-learn, which read-only commands never need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.domain.results import IngestResult, ProductionChange, TrainResult
from app.core.services.cache import BoundedCache
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

DRIFT_REFERENCES_KEPT = 8
LOADED_MODELS_KEPT = 8

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
Ingest = Callable[..., IngestResult]  # lifecycle's ingest(name, path, by=...)
Train = Callable[..., TrainResult]  # lifecycle's train(name, by=, reason=, data=, progress=)
Deploy = Callable[..., ProductionChange]  # lifecycle's deploy(name, version, by=, reason=)
DeployHoldingLock = Callable[..., ProductionChange]  # the same, for a caller holding the project lock (extra_transaction_work=)
Rollback = Callable[..., ProductionChange]  # lifecycle's rollback(name, by=, reason=, to_version=)


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """What every service reads and writes through: the store, the workspace, the shared reads, the clock."""

    registry: Registry
    workspace: Workspace  # the files and the locks (project_lock(workspace, name), workspace.project_lock_path)
    data: ProjectData
    clock: Clock = SYSTEM_CLOCK  # now: clock() as the registry stores it, clock.seconds() for file times


@dataclass(frozen=True, kw_only=True)
class IngestDependencies(Dependencies):
    ingest: Ingest


@dataclass(frozen=True, kw_only=True)
class WorkspaceDependencies(Dependencies):
    """For the services that work on the whole workspace: backup, bundle, verify, upkeep."""

    rewrite_production_manifest: Callable[[str], None]  # lifecycle's: production.json again from the registry


@dataclass(frozen=True, kw_only=True)
class MonitoringDependencies(Dependencies):
    drift_references: BoundedCache  # prepared drift references, one per model version


@dataclass(frozen=True, kw_only=True)
class LifecycleActions:
    """The lifecycle actions the other services may call (Keel's bound methods)."""

    ingest: Ingest
    train: Train
    rewrite_production_manifest: Callable[[str], None]
    deploy: Deploy
    deploy_holding_lock: DeployHoldingLock
    rollback: Rollback


@dataclass
class ServiceDependencies:
    """Each service's dependencies for one workspace, made on first use and kept (Keel._services).

    Only Keel hands them out, to the service objects it builds; a front end never holds them, and
    a test wires its own from Keel's public actions (tests/store_helpers.py), never Keel's."""

    registry: Registry
    workspace: Workspace
    data: ProjectData
    actions: LifecycleActions
    clock: Clock = SYSTEM_CLOCK
    drift_references: BoundedCache = field(default_factory=lambda: BoundedCache(DRIFT_REFERENCES_KEPT))
    loaded_models: BoundedCache = field(default_factory=lambda: BoundedCache(LOADED_MODELS_KEPT))

    @cached_property
    def _reads_and_records(self) -> Dependencies:
        return Dependencies(registry=self.registry, workspace=self.workspace, data=self.data, clock=self.clock)

    @property
    def insights(self) -> Dependencies:
        return self._reads_and_records

    @property
    def traffic(self) -> Dependencies:
        return self._reads_and_records

    @property
    def labels(self) -> Dependencies:
        return self._reads_and_records

    @property
    def reports(self) -> Dependencies:
        return self._reads_and_records

    @property
    def mlflow(self) -> Dependencies:
        return self._reads_and_records

    @cached_property
    def inbox(self) -> IngestDependencies:
        """For the inbox and for batches of files added by hand."""
        return IngestDependencies(registry=self.registry, workspace=self.workspace, data=self.data, clock=self.clock,
                                  ingest=self.actions.ingest)

    @property
    def batches(self) -> IngestDependencies:
        return self.inbox

    @cached_property
    def workspace_upkeep(self) -> WorkspaceDependencies:
        """For backup, bundle, verify and upkeep."""
        return WorkspaceDependencies(registry=self.registry, workspace=self.workspace, data=self.data, clock=self.clock,
                                     rewrite_production_manifest=self.actions.rewrite_production_manifest)

    @cached_property
    def monitoring(self) -> MonitoringDependencies:
        return MonitoringDependencies(registry=self.registry, workspace=self.workspace, data=self.data, clock=self.clock,
                                      drift_references=self.drift_references)
