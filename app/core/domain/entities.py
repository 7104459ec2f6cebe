"""The things Keel keeps and passes between its layers, as typed values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on and the dataset versions they come from."""

    frame: pd.DataFrame
    dataset_versions: list[int]
