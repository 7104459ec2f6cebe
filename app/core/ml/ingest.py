"""A data file becomes a dataset version's rows: the entry point of ingest.

A plain CSV file that fits the whole-file budget is read whole by arrow_ingest (pyarrow, no pandas);
anything else, or a file arrow_ingest leaves to the general reader, goes to chunked_ingest (read whole
when small, else in chunks, so memory stays flat whatever the file's size)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from app.core.domain.entities import Schema
from app.core.ml.file_checks import check_readable_file, file_kind, max_file_bytes, max_in_memory_bytes
from app.core.ml.ingested_file import IngestedFile, Progress, check_cancel

# A CSV file up to this size is read whole (arrow holds about three times the text at its peak);
# a larger one is read in chunks.
WHOLE_FILE_BYTES = 256 << 20


def ingest_file(path: str | os.PathLike, schema: Schema, destination: Path, id_column: str | None = None,
                progress: Progress | None = None, cancel_event: threading.Event | None = None) -> IngestedFile:
    """Read, validate and clean path against schema, drop duplicate rows, hash the content and write
    the rows as Parquet to destination (a temporary name: the caller renames it, or removes it on any
    error). progress(fraction, message) hears how much of the file is read; setting cancel_event stops
    the work (Cancelled)."""
    path = Path(path)
    info = check_readable_file(path, max_file_bytes())
    if file_kind(path) == "csv" and info.st_size <= min(WHOLE_FILE_BYTES, max_in_memory_bytes()):
        from app.core.ml import arrow_ingest

        stored = arrow_ingest.ingest_csv(path, schema, destination, id_column, progress or _silent,
                                         lambda: check_cancel(cancel_event))
        if stored is not None:
            return stored
    from app.core.ml import chunked_ingest

    return chunked_ingest.ingest_file(path, schema, destination, id_column, progress, cancel_event)


def _silent(fraction: float, message: str) -> None:
    pass
