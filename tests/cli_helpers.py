"""Test helpers: in-process CLI calls, workspace snapshots, small synthetic loan data."""

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from app.core.store.registry import Registry
from app.demo.simulator import make_batch
from app.frontends.cli import main

# Files that every command touches by design and that are not part of "the store":
# the log (each command logs its argv) and the per-project lock files (flock targets).
VOLATILE_PARTS = {"logs", "locks"}


def cli(capsys, workspace: Path, *args: str, as_json: bool = True):
    """Run the CLI in-process. -> (exit code, stdout, stderr); stdout parsed when as_json."""
    argv = ["--workspace", str(workspace), *args] + (["--json"] if as_json else [])
    code = main(argv)
    captured = capsys.readouterr()
    out = captured.out
    if as_json:
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1, f"--json must print exactly one document, got: {out!r}"
        out = json.loads(lines[0], parse_constant=refuse_non_standard_json)
    return code, out, captured.err


def refused(capsys, workspace: Path, *args: str) -> str:
    """Run the CLI expecting a refusal: exit 2, one JSON error on stdout, the same message as one
    line on stderr, no traceback, and nothing in the workspace written. -> the message."""
    before = snapshot(workspace)
    code, out, err = cli(capsys, workspace, *args)
    assert code == 2, (out, err)
    message = out["error"]["message"]
    assert out == {"error": {"code": 2, "message": message}}
    assert err == f"keel: error: {message}\n"
    assert "\n" not in message and "Traceback" not in message
    assert snapshot(workspace) == before
    return message


def refuse_non_standard_json(constant: str):
    raise AssertionError(f"--json printed {constant}, which is not JSON (use null)")


def file_listing(workspace: Path) -> dict[str, tuple[int, str]]:
    """Every file under the workspace (except logs and lock files): path -> (size, sha256)."""
    listing = {}
    for path in sorted(workspace.rglob("*")):
        relative = path.relative_to(workspace)
        if path.is_file() and not (set(relative.parts) & VOLATILE_PARTS):
            listing[str(relative)] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return listing


def snapshot(workspace: Path) -> tuple[dict, dict]:
    """(registry table counts, file listing): compared before and after a refused command."""
    registry = Registry(workspace / "registry.db")
    try:
        counts = registry.table_counts()
    finally:
        registry.close()
    return counts, file_listing(workspace)


def loans(rows: int = 120, seed: int = 1, **kwargs) -> pd.DataFrame:
    """Synthetic loan data (target `default`), small enough for fast tests."""
    return make_batch(rows, seed=seed, **kwargs)


def write_csv(path: Path, frame: pd.DataFrame, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def loans_csv(path: Path, rows: int = 120, seed: int = 11) -> Path:
    """A CSV of synthetic loan data (target `default`) at path."""
    return write_csv(path, loans(rows, seed=seed))


def create_project(capsys, workspace: Path, data_dir: Path, name: str = "loans", rows: int = 120,
                   extra: tuple = ("--model", "logreg")) -> dict:
    """A small classification project on loan data with the fast logreg preset."""
    data = write_csv(data_dir / f"{name}-initial.csv", loans(rows, seed=11))
    code, out, err = cli(capsys, workspace, "project", "create", name, "--data", str(data), "--target", "default",
                         *extra)
    assert code == 0, err
    return out


def workspace_copy(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a template workspace (built once per module) for one test to change."""
    folder = tmp_path / "workspace"
    shutil.copytree(template, folder)
    return folder


def deployed_loans_workspace(root: Path, rows: int, seed: int) -> Path:
    """root/workspace with project `loans` (logreg) trained, v1 in production."""
    from app.core.services.lifecycle import Keel

    folder = root / "workspace"
    keel = Keel.open(folder)
    try:
        keel.create_project("loans", write_csv(root / "loans.csv", loans(rows, seed=seed)), "default",
                            settings={"preset": "logreg"})
        keel.train("loans")
        keel.deploy("loans", 1)
    finally:
        keel.close()
    return folder


def rewired(service, **changes):
    """A copy of a service object with some of its dependencies replaced (a failing ingest, a fixed
    clock): each constructor argument is the service's attribute of the same name."""
    wiring = {attribute.lstrip("_"): value for attribute, value in vars(service).items()}
    return type(service)(**{**wiring, **changes})
