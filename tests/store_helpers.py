"""The store of a test's workspace, opened the way any other program may open it, and the
services' dependencies wired on it.

Tests arrange and check rows in the registry through it (tests may import the store; front ends
may not), on its own connection, as another process would; a test that hands a service a changed
dependency builds the service itself as Keel does, on its own store, with Keel's public lifecycle
actions. Keel's own registry and wiring stay private
(tests/test_layer_boundaries.py checks that no test reaches them)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.services.cache import BoundedCache
from app.core.services.dependencies import WorkspaceServices
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

if TYPE_CHECKING:
    from app.core.services.inbox import InboxService
    from app.core.services.lifecycle import Keel
    from app.core.services.monitoring import MonitoringService
    from app.core.services.policy import PolicyService
    from app.core.services.traffic import TrafficService


def workspace_of(keel_or_root: Keel | str | os.PathLike) -> Workspace:
    """The workspace's files and locks (artifact_dir, dataset_dir, registry_path, ...)."""
    root = keel_or_root if isinstance(keel_or_root, str | os.PathLike) else keel_or_root.root
    return Workspace(Path(root))


def store_key(keel_or_root: Keel | str | os.PathLike) -> tuple:
    """What makes two stores the same: the workspace and the clock."""
    clock = None if isinstance(keel_or_root, str | os.PathLike) else keel_or_root.clock
    return workspace_of(keel_or_root).registry_path.resolve(), clock


def sql_rows(registry: Registry, sql: str, params: Iterable = ()) -> list[dict]:
    """A test's own SQL on the store's connection, each row a dict by column name: for checking what
    no named read shows (the store keeps its raw query to itself)."""
    cursor = registry.conn.execute(sql, tuple(params))
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def sql_row(registry: Registry, sql: str, params: Iterable = ()) -> dict | None:
    """The first row of sql_rows (None: no row)."""
    rows = sql_rows(registry, sql, params)
    return rows[0] if rows else None


def open_store(keel_or_root: Keel | str | os.PathLike) -> Registry:
    """The workspace's registry on a connection of its own, stamping rows by the Keel's clock;
    the caller closes it (or uses `opened_store`, or the `store` fixture)."""
    clock: Clock = SYSTEM_CLOCK if isinstance(keel_or_root, str | os.PathLike) else keel_or_root.clock
    return Registry(workspace_of(keel_or_root).registry_path, clock=clock)


@contextmanager
def opened_store(keel_or_root: Keel | str | os.PathLike) -> Iterator[Registry]:
    registry = open_store(keel_or_root)
    try:
        yield registry
    finally:
        registry.close()



def service_dependencies(keel: Keel, registry: Registry) -> WorkspaceServices:
    """What the services of keel's workspace share, on `registry` (a test's own store), with keel's clock."""
    workspace = workspace_of(keel)
    return WorkspaceServices(registry, workspace, ProjectData(registry, workspace), keel.clock)


def inbox_service(keel: Keel, registry: Registry, **changes: object) -> InboxService:
    """An inbox service for keel's workspace on `registry`, wired as Keel wires its own (changes: a
    dependency replaced, such as a failing ingest or a fixed clock)."""
    from app.core.services.inbox import InboxService

    wiring = {"registry": registry, "workspace": workspace_of(keel), "clock": keel.clock, "ingest": keel.ingest}
    return InboxService(**{**wiring, **changes})  # type: ignore[arg-type]


def traffic_service(keel: Keel, registry: Registry) -> TrafficService:
    from app.core.services.traffic import TrafficService

    deps = service_dependencies(keel, registry)
    return TrafficService(registry=registry, data=deps.data, clock=keel.clock)


def monitoring_service(keel: Keel, registry: Registry) -> MonitoringService:
    from app.core.services.monitoring import MonitoringService

    deps = service_dependencies(keel, registry)
    return MonitoringService(registry=registry, workspace=deps.workspace, data=deps.data,
                             traffic=traffic_service(keel, registry), drift_references=BoundedCache(8))


def policy_service(keel: Keel, registry: Registry) -> PolicyService:
    """A policy service for keel's workspace on `registry`, wired as Keel wires its own."""
    from app.core.services.policy import PolicyService

    deps = service_dependencies(keel, registry)
    return PolicyService(registry=registry, workspace=deps.workspace, data=deps.data,
                         inbox=inbox_service(keel, registry), monitoring=monitoring_service(keel, registry),
                         loaded_models=BoundedCache(8), train=keel.train, deploy=keel.deploy,
                         deploy_holding_lock=keel.deploy_holding_lock, rollback=keel.rollback)
