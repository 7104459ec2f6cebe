"""The demo project: built from generated data, trained and deployed, so a new user has something to
look at. Never run unasked by the CLI (`keel demo`); the GUI builds it on an empty workspace."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.core.domain.upkeep import DemoCreated
from app.core.fileio import atomic_path
from app.demo import DEMO_PROJECT
from app.demo.simulator import initial_training_data

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel

DEMO_SETTINGS = {"preset": "hgb", "schedule": "every 10s", "threshold": 0.8, "policy": "auto", "window": "adaptive"}
INITIAL_DATA_NAME = f"{DEMO_PROJECT}-initial.csv"


def create_demo(keel: Keel, progress: Callable[[float, str], None] | None = None, name: str = DEMO_PROJECT) -> DemoCreated:
    report = progress or (lambda fraction, message: None)
    data_path = keel.demo_dir / INITIAL_DATA_NAME
    with atomic_path(data_path) as tmp:
        initial_training_data().to_csv(tmp, index=False)
    report(0.1, "creating the demo project")
    keel.create_project(name, data_path, "default", "classification", dict(DEMO_SETTINGS), by="user")
    report(0.3, "training the first model")
    trained = keel.train(name, reason="demo", progress=lambda f, m: report(0.3 + 0.6 * f, m))
    report(0.95, "deploying")
    keel.deploy(name, trained.version, reason="demo: first model")
    report(1.0, "demo ready")
    return DemoCreated(project=name, version=trained.version, metrics=trained.metrics)
