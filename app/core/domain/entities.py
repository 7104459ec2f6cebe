"""The things Keel keeps and passes between its layers, as typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on and the dataset versions they come from."""

    frame: pd.DataFrame
    dataset_versions: list[int]
    sampling: dict | None = None  # how the rows were sampled to fit the training memory budget (None: all rows)


@dataclass(frozen=True)
class Event:
    """One line of the audit log: append-only (a project deleted later keeps its events, with
    project_id None and its name in project_name)."""

    id: int
    project_id: int | None
    project_name: str | None
    at: str  # UTC, ISO 8601
    kind: str
    by: str
    message: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The event at an edge (--json, a table row): every field under its own name."""
        return {"id": self.id, "project_id": self.project_id, "project_name": self.project_name, "at": self.at,
                "kind": self.kind, "by": self.by, "message": self.message, "details": self.details}
