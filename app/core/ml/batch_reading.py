"""Reading a stored dataset version in pieces (Parquet record batches), within the memory budget.

A version can hold millions of rows. What monitors, scores or searches it holds at most the
rows the training memory budget allows ($KEEL_TRAIN_MEMORY_MB, estimated as a training's rows
are: datasets.training_bytes_per_row): a version over it is read piece by piece and a seeded
random share of its rows is kept (the same share of the same rows on every read), and the
caller records the sample (a SamplingRecord, as a training does).
Searches by ID and the newest rows read piece by piece and keep only what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from app.core.domain.decisions import SamplingRecord
from app.core.domain.entities import Schema
from app.core.ml import datasets

PIECE_ROWS = 1 << 16


def pieces(path: Path, columns: list[str] | None = None, piece_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The version's rows, a piece of at most piece_rows (PIECE_ROWS) at a time."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=piece_rows or PIECE_ROWS, columns=columns):
        yield batch.to_pandas()


def rows_within_budget(schema: Schema) -> int:
    """How many rows of this schema the memory budget holds."""
    return max(1, datasets.train_memory_bytes() // datasets.training_bytes_per_row(schema))


def sample_share(rows: int, schema: Schema) -> float:
    """The share of `rows` that fits the memory budget (1.0: all of them)."""
    return min(1.0, rows_within_budget(schema) / max(1, rows))


def sampling_record(kept: int, rows: int) -> SamplingRecord:
    """`kept` of `rows` rows, sampled to fit the training memory budget."""
    return SamplingRecord(sampled_rows=kept, of_rows=rows, memory_budget_mb=round(datasets.train_memory_bytes() / 2**20))


def read_within_budget(path: Path, schema: Schema, rows: int, seed: int,
                       labelled_only: bool = False) -> tuple[pd.DataFrame, SamplingRecord | None]:
    """The version's rows (labelled_only: its labelled rows), or, when `rows` of them would take more
    than the memory budget, a seeded random share of them read piece by piece; with the sample's
    record (None: every row). The same seed keeps the same rows: a labelled-only read keeps the
    labelled rows of the full read's sample."""
    share = sample_share(rows, schema)
    target = schema.target
    if share >= 1:
        frame = datasets.read_frame(path)
        if labelled_only:
            frame = frame[frame[target].notna()].reset_index(drop=True)
        return frame, None
    rng = np.random.default_rng(seed)
    kept = []
    for piece in pieces(path):
        keep = rng.random(len(piece)) < share
        if labelled_only:
            keep &= piece[target].notna().to_numpy()
        kept.append(piece[keep])
    frame = pd.concat(kept, ignore_index=True) if kept else datasets.read_frame(path, rows=0)
    return frame, sampling_record(len(frame), rows)


def newest_labelled_rows(paths: Iterable[Path], target: str, limit: int) -> pd.DataFrame:
    """The last `limit` labelled rows of these versions (oldest version first), read piece by piece:
    memory holds those rows and one piece."""
    kept: list[pd.DataFrame] = []
    held = 0
    for path in paths:
        for piece in pieces(path):
            piece = piece[piece[target].notna()]
            if not len(piece):
                continue
            kept.append(piece)
            held += len(piece)
            while kept and held - len(kept[0]) >= limit:
                held -= len(kept.pop(0))
    if not kept:
        return pd.DataFrame()
    return pd.concat(kept, ignore_index=True).tail(limit).reset_index(drop=True)


def rows_with_ids(path: Path, id_column: str, ids: set[str]) -> pd.DataFrame:
    """The version's rows whose ID (as text) is one of `ids`, read piece by piece."""
    found = []
    for piece in pieces(path):
        values = piece[id_column]
        match = piece[values.notna().to_numpy() & values.astype(str).isin(ids).to_numpy()]
        if len(match):
            found.append(match)
    return pd.concat(found, ignore_index=True) if found else next(pieces(path, piece_rows=1)).iloc[:0]


def id_values(path: Path, id_column: str) -> set[str]:
    """Every ID (as text) the version holds, read one column at a time piece by piece."""
    found: set[str] = set()
    for piece in pieces(path, columns=[id_column]):
        found.update(datasets.id_text(piece[id_column]).dropna().astype(str))
    return found


def column(path: Path, name: str) -> pd.Series:
    """One column of the version (the others are never read)."""
    return pd.read_parquet(path, columns=[name])[name]
