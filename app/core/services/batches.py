"""Adding many files to a project at once (a folder, a multi-selection): each file becomes
its own batch, in name order. A refused file changes no data, version or file; the audit log
records the attempt and why."""

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from app.core.domain.data_files import DATA_FILE_SUFFIXES
from app.core.domain.errors import BusyError, Cancelled, KeelError
from app.core.domain.results import FileAdded, FileAlreadyPresent, FileRefused, FilesIngested
from app.core.services.dependencies import Ingest, Progress
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry

log = logging.getLogger("keel.batches")

REFUSED_EVENT = "data_refused"


def name_order(path: Path) -> list:
    """batch-2 before batch-10: digits compare as numbers, the rest without case."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def data_files(folder: str | os.PathLike) -> list[Path]:
    """The data files directly in `folder` (CSV, TSV, text, gzip, Parquet), in name order."""
    root = Path(folder)
    if not root.is_dir():
        raise KeelError(f"{root}: not a folder")
    files = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.name.lower().endswith(DATA_FILE_SUFFIXES)]
    return sorted(files, key=name_order)


def _within(report: Callable[[float, str], None], index: int, count: int) -> Callable[[float, str], None]:
    """The progress of file index (of count) as a share of the whole."""
    def file_progress(fraction: float, message: str) -> None:
        report((index + fraction) / max(1, count), f"{message} ({index + 1} of {count})")
    return file_progress


class BatchService:
    """Many files added to a project at once (Keel.batches), each through the lifecycle's ingest."""

    def __init__(self, *, registry: Registry, data: ProjectData, ingest: Ingest) -> None:
        self._registry = registry
        self._data = data
        self._ingest = ingest

    def ingest_files(self, name: str, paths: Iterable[str | os.PathLike], by: str = "user",
                     progress: Progress | None = None, cancel_event: threading.Event | None = None) -> FilesIngested:
        """Ingest each file as its own batch; a refusal is recorded in the audit log (event `data_refused`)."""
        report = progress or (lambda fraction, message: None)
        files = [Path(p) for p in paths]
        added: list[FileAdded] = []
        present: list[FileAlreadyPresent] = []
        refused: list[FileRefused] = []
        not_reached: list[str] = []
        for index, path in enumerate(files):
            if cancel_event is not None and cancel_event.is_set():
                not_reached = [p.name for p in files[index:]]
                break
            report(index / max(1, len(files)), f"{path.name} ({index + 1} of {len(files)})")
            try:
                result = self._ingest(name, path, by=by, progress=_within(report, index, len(files)),
                                      cancel_event=cancel_event)
            except Cancelled:
                not_reached = [p.name for p in files[index:]]
                break
            except BusyError:
                raise  # the workspace, not the file: nothing to record against it
            except KeelError as exc:
                refused.append(self._record_refusal(name, path, str(exc), by))
                continue
            if result.duplicate_of:
                present.append(FileAlreadyPresent(file=path.name, dataset_version=result.duplicate_of))
            else:
                added.append(FileAdded(file=path.name, dataset_version=result.dataset_version, rows=result.rows,
                                       warnings=len(result.warnings)))
        report(1.0, "done")
        return FilesIngested(added=tuple(added), already_present=tuple(present), refused=tuple(refused),
                             not_reached=tuple(not_reached))

    def _record_refusal(self, name: str, path: Path, error: str, by: str) -> FileRefused:
        reason = error.strip().splitlines()[0] if error.strip() else "refused"
        project = self._data.project(name)
        self._registry.add_event(project, REFUSED_EVENT, f"{path.name} refused: {reason}", by,
                                 {"file": str(path), "reason": reason})
        return FileRefused(file=path.name, reason=reason)
