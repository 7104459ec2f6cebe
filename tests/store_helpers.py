"""The store of a test's workspace, opened the way any other program may open it.

Tests arrange and check rows in the registry through it (tests may import the store; front ends
may not), on its own connection, as another process would; Keel's own registry and wiring stay
private (tests/test_layer_boundaries.py checks that no test reaches them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel


def workspace_of(keel_or_root: Keel | str | os.PathLike) -> Workspace:
    """The workspace's files and locks (artifact_dir, dataset_dir, registry_path, ...)."""
    root = keel_or_root if isinstance(keel_or_root, str | os.PathLike) else keel_or_root.root
    return Workspace(Path(root))


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
