"""Helpers for the monitoring-loop tests: a small trained project and inbox drops."""

import json
import time
from pathlib import Path

from app.core.services.lifecycle import Keel
from app.demo.simulator import initial_training_data, make_batch
from app.frontends.cli import main


def cli(capsys, workspace: Path, *args: str):
    """Run the CLI in-process with --json. -> (exit code, parsed stdout)."""
    code = main(["--workspace", str(workspace), *args, "--json"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one document, got: {out!r}"
    return code, json.loads(lines[0])


def make_project(workspace: Path, name: str = "loan", rows: int = 800, settings: dict | None = None,
                 deploy: bool = True) -> Keel:
    """A project created from simulated data (concept A), trained and deployed."""
    keel = Keel.open(workspace)
    data = workspace / f"{name}-initial.csv"
    initial_training_data(rows=rows, seed=3).to_csv(data, index=False)
    keel.create_project(name, data, "default", "classification", {"preset": "logreg", **(settings or {})})
    if deploy:
        trained = keel.train(name)
        keel.deploy(name, trained.version)
    return keel


def drop(keel: Keel, name: str, frame, filename: str, settled: bool = True) -> Path:
    """Put a CSV in the project's inbox; settled: seen unchanged by a sweep long enough ago for
    the next sweep to take it."""
    path = keel.inbox_dir(name) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    if settled:
        settle(keel, name, filename)
    return path


def settle(keel: Keel, name: str, *filenames: str) -> None:
    """Record that a sweep saw these inbox files, as they are now, two minutes ago."""
    keel.inbox.record_sightings(name, now=time.time() - 120, only=set(filenames))


def batch(index: int, rows: int = 300, concept: float = 0.0, shift: float = 0.0, labelled: bool = True):
    frame = make_batch(rows, seed=5000 + index, concept=concept, shift=shift)
    return frame if labelled else frame.drop(columns=["default"])


ROOT = Path(__file__).resolve().parents[1]
