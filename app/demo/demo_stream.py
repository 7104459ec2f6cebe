"""The demo project's live stream: a bounded series of batches dropped into its inbox.

The GUI calls `drop_next_demo_batch(keel)` on a timer (every few seconds) and offers
`reset_demo(keel)`. The stream is stationary at first, then the concept changes
abruptly, so a new user watches monitoring -> alert -> retrain -> redeploy happen
(the demo project monitors every 10 s with policy auto and an adaptive window).
Every fifth batch comes without labels, to show the label-free estimate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.domain.upkeep import DemoCreated, DemoStreamState
from app.core.fileio import atomic_path, write_text_atomic
from app.demo import DEMO_PROJECT
from app.demo.demo_project import create_demo
from app.demo.simulator import StreamSpec, concept_and_shift, make_batch

if TYPE_CHECKING:
    import pandas as pd

    from app.core.services.lifecycle import Keel

DEMO_STREAM = StreamSpec(kind="abrupt", batches=24, batch_rows=300, drift_at=8, seed=11)
UNLABELLED_EVERY = 5


def _state_path(keel: Keel) -> Path:
    return keel.demo_dir / "stream.json"


def demo_state(keel: Keel, name: str = DEMO_PROJECT) -> DemoStreamState:
    """How far the stream has played for the current demo project (read from its state file)."""
    created_at = _project_created_at(keel, name)
    try:
        stored = json.loads(_state_path(keel).read_text())
    except (OSError, ValueError):
        stored = {}
    played = stored.get("next") if isinstance(stored, dict) and stored.get("project_created_at") == created_at else None
    # a new demo project (or no readable state): a new stream
    return DemoStreamState(next=played if isinstance(played, int) else 0, batches=DEMO_STREAM.batches,
                           project_created_at=created_at)


def _project_created_at(keel: Keel, name: str) -> str | None:
    project = keel.find_project(name)
    return project.created_at if project else None


def demo_batch(index: int) -> pd.DataFrame:
    concept, shift = concept_and_shift(DEMO_STREAM, index)
    batch = make_batch(DEMO_STREAM.batch_rows, seed=DEMO_STREAM.seed * 1000 + index + 1, concept=concept, shift=shift)
    if index % UNLABELLED_EVERY == UNLABELLED_EVERY - 1:
        batch = batch.drop(columns=["default"])
    return batch


def drop_next_demo_batch(keel: Keel, name: str = DEMO_PROJECT) -> bool:
    """Write the next batch into the demo inbox (atomically); False when the stream is over
    or there is no demo project."""
    state = demo_state(keel, name)
    if state.project_created_at is None or state.finished:
        return False
    index = state.next
    inbox = keel.inbox_dir(name)
    inbox.mkdir(parents=True, exist_ok=True)
    with atomic_path(inbox / f"demo-batch-{index + 1:03d}.csv") as tmp:
        demo_batch(index).to_csv(tmp, index=False)
    write_text_atomic(_state_path(keel), json.dumps(replace(state, next=index + 1).to_json()))
    return True


def reset_demo(keel: Keel, name: str = DEMO_PROJECT, progress: Callable[[float, str], None] | None = None) -> DemoCreated:
    """Delete the demo project with its files and stream, and create it afresh."""
    if _project_created_at(keel, name) is not None:
        keel.delete_project(name, by="user")
    keel.discard_project_folder(name)
    _state_path(keel).unlink(missing_ok=True)
    return create_demo(keel, progress=progress, name=name)
