"""What ingest hands back for a file, shared by the two readers (arrow_ingest, chunked_ingest)
and their entry point (ingest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.core.domain.errors import Cancelled

Progress = Callable[[float, str], None]


@dataclass
class IngestedFile:
    """What a file became: its rows written to Parquet at the destination given, and its summary."""

    source: str
    rows: int
    labelled_rows: int
    warnings: list[str]
    report: dict
    content_sha256: str
    chunks: int = 1

    @property
    def labelled(self) -> bool:
        return self.labelled_rows > 0


def check_cancel(cancel_event: threading.Event | None) -> None:
    if cancel_event is not None and cancel_event.is_set():
        raise Cancelled("ingest cancelled; nothing was stored")
