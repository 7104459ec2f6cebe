"""What the services of one workspace are built from, and the shapes of the lifecycle actions they take.

A service is an object (InboxService, PolicyService, ...) that Keel builds once per workspace, on
first use. Its constructor takes each of its dependencies by name, and only those it uses: the
registry (every read and write of the store), the workspace (its files and its locks), the shared
reads (ProjectData), the clock, the bounded caches that belong to the workspace, the other service
objects it calls (the policy is handed the inbox and monitoring; monitoring the traffic service;
reports the insights; upkeep the backup service) and the lifecycle actions it takes, Keel's bound
methods (the policy trains, deploys and rolls back; the inbox and batches ingest). Its rules are
its methods; a module's functions are the computations that need no dependency. No service is
handed Keel, holds a bundle of dependencies, or calls another service's module functions in
place of its object: tests/test_layer_boundaries.py and tests/test_service_dependencies.py check it.

WorkspaceServices (Keel._services, private) holds what the services of the workspace share; a
front end never holds it (tests may use `keel._services.registry` to arrange or check rows). The
service modules themselves are imported on first use: the policy's and monitoring's load pandas
and scikit-learn, which read-only commands never need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
Train = Callable[..., TrainResult]  # lifecycle's train(name, by=, reason=, data=, progress=, cancel_event=)
Deploy = Callable[..., ProductionChange]  # lifecycle's deploy(name, version, by=, reason=)
DeployHoldingLock = Callable[..., ProductionChange]  # the same, for a caller holding the project lock (extra_transaction_work=)
Rollback = Callable[..., ProductionChange]  # lifecycle's rollback(name, by=, reason=, to_version=)
RewriteProductionManifest = Callable[[str], None]  # lifecycle's: a project's production.json again from the registry


@dataclass(frozen=True)
class WorkspaceServices:
    """What the services of one workspace share (Keel._services): the store, the files and locks, the
    shared reads, the clock, and the caches that belong to the workspace and have a bound."""

    registry: Registry
    workspace: Workspace  # the files and the locks (project_lock(workspace, name), workspace.project_lock_path)
    data: ProjectData
    clock: Clock = SYSTEM_CLOCK  # now: clock() as the registry stores it, clock.seconds() for file times
    drift_references: BoundedCache = field(default_factory=lambda: BoundedCache(DRIFT_REFERENCES_KEPT))
    loaded_models: BoundedCache = field(default_factory=lambda: BoundedCache(LOADED_MODELS_KEPT))
