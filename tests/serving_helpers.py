"""What the scoring-server tests share: the loan features, one valid row, a server that answers."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.adapters import serving

FEATURES = ["income", "age", "debt_ratio", "tenure_months", "region", "has_mortgage"]
ROW = {"income": 42000, "age": 35, "debt_ratio": 0.31, "tenure_months": 30, "region": "north", "has_mortgage": "yes"}
READY_SECONDS = 30


@contextmanager
def ready_server(workspace: Path, project: str, **options) -> Iterator[serving.ServerHandle]:
    """serving.start_server(workspace, project, **options), ready (its /ping answered), stopped on exit."""
    with serving.start_server(workspace, project, **options) as handle:
        assert handle.wait_ready(READY_SECONDS)
        yield handle
