"""Late labels: `keel labels NAME FILE` (and Data > Add labels... in the window).

A file of `id,label` rows (or the project's ID column and target names) is joined by ID
to what was scored before (the prediction log) and to unlabelled rows of ingested
batches. The joined rows become a new labelled dataset version whose report records its
lineage (the file, the traffic windows and batches it labels); stored versions are never
edited, so their hashes stay true. Each original window then gets its measured metric:
a traffic window from the logged predictions, a batch from the predictions of the model
that monitored it. Every such late measurement is evaluated once by the next monitoring
cycle (app/core/services/traffic.py).

Counted and reported, never stored: IDs found nowhere (unknown), an ID given again in
the file (duplicate: the first row counts), and IDs already labelled (by an earlier
labels file or in an ingested labelled batch); rows whose ID or label cannot be read
(unreadable).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import pandas as pd

from app.core.domain.clock import Clock
from app.core.domain.entities import DatasetVersion, LabelledPrediction, LoggedPrediction, Project, Schema
from app.core.domain.errors import KeelError, ValidationError
from app.core.domain.traffic import BatchMeasuredLate, LabelsAdded, WindowMeasuredLate
from app.core.fileio import sha256_file
from app.core.ml import batch_reading, datasets
from app.core.ml.childproc import capped_native_threads
from app.core.services import traffic
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace, project_lock

log = logging.getLogger("keel.labels")


def _read_labels(raw: datasets.RawTable, schema: Schema,
                 id_column: str) -> tuple[pd.Series, pd.Series, int, list[str]]:
    frame = raw.frame
    id_name = next((c for c in (id_column, "id") if c in frame.columns), None)
    label_name = next((c for c in (schema.target, "label") if c in frame.columns), None)
    if id_name is None or label_name is None:
        raise ValidationError(f"{raw.source}: a labels file needs the columns id,label (or {id_column},"
                              f"{schema.target}); got {', '.join(map(str, frame.columns))}")
    ids = datasets.id_text(frame[id_name])
    labels, problems = datasets.clean_labels(frame[label_name], schema, raw.source)
    readable = ids.notna() & labels.notna()
    warnings = list(raw.warnings) + problems
    unreadable = int((~readable).sum())
    if unreadable:
        warnings.append(f"{raw.source}: {unreadable} row(s) without a readable ID or label: ignored")
    return ids[readable].reset_index(drop=True), labels[readable].reset_index(drop=True), unreadable, warnings


# --------------------------------------------------------------------------- joining
@dataclass(frozen=True)
class JoinedIds:
    """A labels file's IDs joined: those found (in the order given), their logged records, the rows of
    ingested batches they name (id -> (dataset version, stored row)), and what was counted and left out."""

    ids: list[str]
    records: list[LoggedPrediction]
    batch_rows: dict[str, tuple[DatasetVersion, pd.Series]]
    unknown: int  # IDs found in no prediction and no unlabelled row
    already_labelled: int


@dataclass(frozen=True)
class FileCounts:
    """What a labels file held besides its joined rows: every row, repeated IDs, unreadable rows."""

    rows: int
    duplicate: int
    unreadable: int


def _labelled_frame(joined: JoinedIds, labels_by_id: pd.Series, schema: Schema, id_column: str) -> pd.DataFrame:
    """The joined rows, features as the model saw them (a batch's own row when there is one, else the
    newest logged input), the ID and the label."""
    if not joined.ids:
        return pd.DataFrame()
    newest_record: dict[str, LoggedPrediction] = {}
    for record in joined.records:
        newest_record[record.record_id] = record
    from_batches = [i for i in joined.ids if i in joined.batch_rows]
    from_log = [i for i in joined.ids if i not in joined.batch_rows]
    parts = []
    if from_batches:
        stored = pd.DataFrame([joined.batch_rows[i][1] for i in from_batches]).reset_index(drop=True)
        parts.append(datasets.to_model_frame(stored, schema).assign(**{id_column: from_batches}))
    if from_log:
        logged = traffic.model_frame([newest_record[i] for i in from_log], schema)
        parts.append(logged.assign(**{id_column: from_log}))
    frame = pd.concat(parts, ignore_index=True)
    frame = traffic.storage_frame(frame, schema)
    frame[schema.target] = pd.Series(labels_by_id.loc[frame[id_column]].to_numpy(),
                                     dtype=datasets.target_dtype(schema))
    return frame


# --------------------------------------------------------------------------- storing and measuring
def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def _measure_window(registry: Registry, project: Project, window_id: int, dataset_id: int,
                    now: str) -> WindowMeasuredLate:
    window = registry.traffic_window(window_id)
    value, labelled = traffic.measure_window(registry, project, window)
    registry.set_window_measurement(window_id, value, labelled, now)
    registry.insert_late_measurement(project_id=project.id, traffic_window_id=window_id,
                                     labels_dataset_version_id=dataset_id, at=now, rows=window.rows,
                                     labelled_rows=labelled, metric=project.metric, value=value)
    return WindowMeasuredLate(window=window_id, rows=window.rows, labelled_rows=labelled, metric=project.metric,
                              value=value)


class LabelService:
    """Labels that arrive after the predictions (Keel.labels, `keel labels`)."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData, clock: Clock) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._clock = clock

    def add_labels(self, name: str, file_path: str | os.PathLike, by: str = "user") -> LabelsAdded:
        project = self._data.project(name)
        settings = project.settings
        if not settings.id_column:
            raise KeelError(f"project {name!r} has no ID column to join labels on: set one with "
                            f"`keel project set {name} --id-column NAME`")
        schema = project.schema
        raw = datasets.read_table(file_path)
        ids, labels, unreadable, warnings = _read_labels(raw, schema, settings.id_column)
        duplicated = ids.duplicated(keep="first")
        labels_by_id = pd.Series(labels[~duplicated].to_numpy(), index=ids[~duplicated].to_numpy())
        counts = FileCounts(rows=len(raw.frame), duplicate=int(duplicated.sum()), unreadable=unreadable)
        with project_lock(self._workspace, name):
            joined = self._join(project, settings.id_column, labels_by_id.index.tolist())
            frame = _labelled_frame(joined, labels_by_id, schema, settings.id_column)
            stored: tuple[int | None, list[WindowMeasuredLate], list[BatchMeasuredLate]] = (None, [], [])
            if not frame.empty:
                stored = self._store(project, frame, joined, raw.source, counts, by, settings.id_column)
        version, windows, batches = stored
        return LabelsAdded(project=name, rows=counts.rows, joined=len(frame), unknown=joined.unknown,
                           duplicate=counts.duplicate, already_labelled=joined.already_labelled,
                           unreadable=counts.unreadable, dataset_version=version, traffic_windows=tuple(windows),
                           batches=tuple(batches), warnings=tuple(warnings))

    def _join(self, project: Project, id_column: str, ids: list[str]) -> JoinedIds:
        """The IDs found in the prediction log or unlabelled in ingested batches, and not labelled before."""
        registry = self._registry
        already = registry.labelled_record_ids(project.id, ids)
        batch_rows, labelled_in_batches = self._batch_rows(project, id_column, set(ids) - already)
        already |= labelled_in_batches
        wanted = [i for i in ids if i not in already]
        records = registry.predictions_for_records(project.id, wanted)
        logged = {r.record_id for r in records}
        found = [i for i in wanted if i in logged or i in batch_rows]
        return JoinedIds(ids=found, records=records, batch_rows=batch_rows, unknown=len(wanted) - len(found),
                         already_labelled=sum(1 for i in ids if i in already))

    def _batch_rows(self, project: Project, id_column: str,
                    ids: set[str]) -> tuple[dict[str, tuple[DatasetVersion, pd.Series]], set[str]]:
        """Rows of ingested batches with these IDs: (id -> (dataset version row, its frame row) for the
        unlabelled ones, the IDs already labelled there)."""
        import pyarrow.parquet as pq

        target = project.schema.target
        found: dict[str, tuple[DatasetVersion, pd.Series]] = {}
        labelled: set[str] = set()
        if not ids:
            return found, labelled
        for version in self._registry.dataset_versions(project.id):
            path = self._workspace.root / version.path
            if id_column not in pq.read_schema(path).names:
                continue
            match = batch_reading.rows_with_ids(path, id_column, ids)  # piece by piece: only the matches stay
            for _, row in match.iterrows():
                record_id = str(row[id_column])
                if pd.notna(row[target]):
                    labelled.add(record_id)
                else:
                    found[record_id] = (version, row)
        return {i: v for i, v in found.items() if i not in labelled}, labelled

    def _store(self, project: Project, frame: pd.DataFrame, joined: JoinedIds, source: str, counts: FileCounts,
               by: str, id_column: str) -> tuple[int, list[WindowMeasuredLate], list[BatchMeasuredLate]]:
        registry, schema = self._registry, project.schema
        storage = datasets.to_storage_frame(frame, schema)
        digest = datasets.content_hash(storage)
        version = registry.next_number("dataset_versions", project.id)
        parent = registry.dataset_versions(project.id)[-1]
        path = self._workspace.dataset_dir(project.name) / f"v{version}.parquet"
        prediction_ids = [r.id for r in joined.records]
        window_ids = sorted(set(registry.windows_of_predictions(project.id, prediction_ids).values()))
        batch_versions = sorted({joined.batch_rows[i][0].version for i in joined.ids if i in joined.batch_rows})
        lineage = {"labels_file": source, "traffic_windows": window_ids, "dataset_versions": batch_versions,
                   "logged_records": len(prediction_ids), "joined": len(frame), "unknown": joined.unknown,
                   "duplicate": counts.duplicate, "already_labelled": joined.already_labelled,
                   "unreadable": counts.unreadable}
        datasets.write_frame(storage, path)
        now = self._clock()
        try:
            with registry.transaction():
                dataset_id = registry.insert_dataset_version(
                    project_id=project.id, version=version, path=str(path.relative_to(self._workspace.root)),
                    content_sha256=digest, file_sha256=sha256_file(path), rows=len(storage), labelled_rows=len(storage), source=f"labels: {source}",
                    parent_id=parent.id,
                    report={"source": source, "rows": len(storage), "labelled_rows": len(storage), "lineage": lineage})
                registry.insert_late_labels([(project.id, record_id, json.dumps(_plain(label)), dataset_id, now)
                                             for record_id, label in zip(frame[id_column], frame[schema.target])])
                windows = [_measure_window(registry, project, window_id, dataset_id, now) for window_id in window_ids]
                batches = [self._measure_batch(project, id_column, batch_version, dataset_id)
                           for batch_version in batch_versions]
                registry.add_event(project, "labels_added",
                                   f"dataset v{version}: {len(frame)} late label(s) from {source} joined by ID "
                                   f"({joined.unknown} unknown, {counts.duplicate} duplicate, "
                                   f"{joined.already_labelled} already labelled)", by,
                                   {"dataset_version": version, **lineage})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return version, windows, [b for b in batches if b is not None]

    def _measure_batch(self, project: Project, id_column: str, batch_version: int,
                       dataset_id: int) -> BatchMeasuredLate | None:
        """The batch's metric over its rows labelled so far, with the model that monitored it."""
        registry, schema = self._registry, project.schema
        row = next(v for v in registry.dataset_versions(project.id) if v.version == batch_version)
        result = registry.monitor_result_of_dataset(row.id)
        if result is None:
            return None  # not monitored yet: the cycle that monitors it has no predictions to compare with
        path = self._workspace.root / row.path
        known: dict[str, object] = {}
        for piece in batch_reading.pieces(path, columns=[id_column]):  # the IDs first, one column
            known.update(registry.late_labels_for(project.id, piece[id_column].dropna().astype(str).tolist()))
        labelled = batch_reading.rows_with_ids(path, id_column, set(known))  # then only the labelled rows
        model_version = registry.model_version_by_id(result.model_version_id).version
        loaded = self._data.load_version(project.name, model_version)
        X = datasets.to_model_frame(labelled, schema)
        with capped_native_threads():
            predictions = loaded.model.predict(X)
            probabilities = (loaded.model.predict_proba(X) if project.task == "classification"
                             and hasattr(loaded.model, "predict_proba") else None)
        rows = [LabelledPrediction(prediction=_plain(p), label=known[str(i)],
                                   probabilities=None if probabilities is None else [float(x) for x in probabilities[n]])
                for n, (p, i) in enumerate(zip(predictions, labelled[id_column]))]
        value = traffic.window_metric(project, rows)
        registry.insert_late_measurement(project_id=project.id, monitor_result_id=result.id,
                                         labels_dataset_version_id=dataset_id, rows=row.rows,
                                         labelled_rows=len(rows), metric=project.metric, value=value)
        return BatchMeasuredLate(dataset_version=batch_version, rows=row.rows, labelled_rows=len(rows),
                                 metric=project.metric, value=value)
