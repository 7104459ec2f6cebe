"""The prediction log: what the server and `predict` scored, one record per row.

A record holds the row's ID (the project's ID column, or one Keel assigned), the model's
input as it saw it (in the schema's feature order), the prediction, the class
probabilities (classifiers), the model version and the time. The share of rows recorded
is the project's `prediction_log` setting (full with an ID column, off without); the log
keeps at most `prediction_log_rows` records and none older than `prediction_log_days`.

`record()` writes synchronously (the CLI's `predict`: one transaction with the pruning).
`PredictionLogWriter` is the server's: a request thread only appends to a buffer; a
background thread commits the buffer at least every FLUSH_SECONDS (a crash loses at most
that much), computes the class probabilities of the whole buffer in one call when the
request did not ask for them, and flushes what is left when it is stopped (a clean
shutdown loses nothing answered).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app.core.domain.clock import SYSTEM_CLOCK, Clock, iso_utc
from app.core.domain.entities import Project
from app.core.domain.results import PredictionLogStatus
from app.core.domain.settings import ProjectSettings
from app.core.store.registry import Registry

if TYPE_CHECKING:  # numpy and pandas load on first use: `status` reads the log's summary without them
    import numpy as np
    import pandas as pd

log = logging.getLogger("keel.prediction_log")

ASSIGNED_ID_COLUMN = "keel_id"  # the ID column of `predict` output for a project without one
FLUSH_SECONDS = 0.5
MAX_BUFFERED_ROWS = 500_000  # the registry locked for minutes: keep the newest, count the rest as lost
PRUNE_SECONDS = 30.0


@dataclass(frozen=True)
class LogPolicy:
    """How much of a project's traffic is recorded, and how long it is kept."""

    share: float
    max_rows: int
    max_days: float
    id_column: str | None

    @classmethod
    def of(cls, settings: ProjectSettings) -> LogPolicy:
        return cls(settings.effective_prediction_log(), int(settings.prediction_log_rows),
                   float(settings.prediction_log_days), settings.id_column)

    @property
    def enabled(self) -> bool:
        return self.share > 0

    @property
    def returns_ids(self) -> bool:
        """Answers carry an ID per row when the project has an ID column or records its traffic."""
        return self.enabled or self.id_column is not None


def new_record_id() -> str:
    return uuid.uuid4().hex


def complete_ids(given: list | None, rows: int) -> list[str]:
    """The request's IDs as text, with one assigned wherever a row has none."""
    if given is None:
        return [new_record_id() for _ in range(rows)]
    out = []
    for cell in given:
        text = "" if cell is None or (isinstance(cell, float) and cell != cell) else str(cell).strip()
        out.append(text or new_record_id())
    return out


def sampled_rows(rows: int, share: float) -> list[int] | None:
    """Row positions to record: None for all of them (full logging), [] for none."""
    if share >= 1.0:
        return None
    if share <= 0.0:
        return []
    return [i for i in range(rows) if random.random() < share]


def cutoff(max_days: float, now: float) -> str:
    """The time before which records are older than max_days (now: seconds since the epoch)."""
    return iso_utc(now - timedelta(days=max_days).total_seconds())


def encode(project_id: int, model_version_id: int, at: str, ids: list[str], X: pd.DataFrame, predictions: list,
           probabilities: np.ndarray | list | None, source: str) -> list[tuple]:
    """Registry rows (see Registry.insert_predictions) for the scored rows."""
    inputs = X.to_numpy(dtype=object).tolist()
    rows = []
    for index, record_id in enumerate(ids):
        proba = None if probabilities is None else json.dumps([float(p) for p in probabilities[index]])
        rows.append((project_id, model_version_id, at, record_id, source,
                     json.dumps([_plain(v) for v in inputs[index]]), json.dumps(_plain(predictions[index])), proba))
    return rows


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def record(registry: Registry, project: Project, model_version_id: int, ids: list[str], X: pd.DataFrame, predictions: list,
           probabilities: np.ndarray | list | None, source: str = "predict", clock: Clock = SYSTEM_CLOCK) -> int:
    """Record scored rows at clock's now (sampled by the project's setting), pruning in the same transaction."""
    policy = LogPolicy.of(project.settings)
    chosen = sampled_rows(len(ids), policy.share)
    if chosen == []:
        return 0
    if chosen is not None:
        ids = [ids[i] for i in chosen]
        X = X.iloc[chosen]
        predictions = [predictions[i] for i in chosen]
        probabilities = None if probabilities is None else [probabilities[i] for i in chosen]
    now = clock.seconds()
    rows = encode(project.id, model_version_id, iso_utc(now), ids, X, predictions, probabilities, source)
    with registry.transaction():
        registry.insert_predictions(rows)
        registry.prune_predictions(project.id, policy.max_rows, cutoff(policy.max_days, now))
    return len(rows)


def summary(registry: Registry, project: Project) -> PredictionLogStatus:
    """For `status`: how many records the log holds, and its limits."""
    policy = LogPolicy.of(project.settings)
    found = registry.prediction_log_summary(project.id)
    return PredictionLogStatus(rows=found.rows, oldest_at=found.oldest_at, newest_at=found.newest_at,
                               share=policy.share, max_rows=policy.max_rows, max_days=policy.max_days)


def _one_openmp_thread() -> None:
    """The writer's predict_proba runs one OpenMP thread (a per-thread setting): a team on every
    core would compete with the request threads it exists to stay out of the way of."""
    try:
        from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

        ThreadpoolController().select(user_api="openmp").limit(limits=1)
    except Exception:  # no OpenMP runtime loaded: nothing to limit
        log.debug("prediction log: OpenMP limit not applied", exc_info=True)


@dataclass
class _Pending:
    project_id: int
    model_version_id: int
    model: Any  # a fitted scikit-learn estimator
    wants_probabilities: bool
    at: float
    ids: list[str]
    X: pd.DataFrame
    predictions: list
    probabilities: np.ndarray | list | None  # filled in on the writer thread when wanted
    policy: LogPolicy


class PredictionLogWriter:
    """The server's log: add() from request threads (a list append under a lock), commits in a
    background thread every FLUSH_SECONDS, flushes everything on stop()."""

    def __init__(self, registry: Registry, flush_seconds: float = FLUSH_SECONDS, clock: Clock = SYSTEM_CLOCK):
        self._registry = registry
        self._clock = clock  # when a request's rows were scored, and the age limit's now
        self.flush_seconds = flush_seconds
        self.written = 0
        self.lost = 0
        self._pending: list[_Pending] = []
        self._buffered_rows = 0
        self._guard = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_prune: dict[int, float] = {}
        self._since_prune: dict[int, int] = {}
        self._policies: dict[int, LogPolicy] = {}
        self._thread_state = threading.local()
        self._thread = threading.Thread(target=self._run, name="keel-prediction-log", daemon=True)
        self._thread.start()

    def add(self, project_id: int, model_version_id: int, model: Any, wants_probabilities: bool, ids: list[str],
            X: pd.DataFrame, predictions: list, probabilities: np.ndarray | list | None, policy: LogPolicy) -> None:
        chosen = sampled_rows(len(ids), policy.share)
        if chosen == []:
            return
        if chosen is not None:
            ids = [ids[i] for i in chosen]
            X = X.iloc[chosen]
            predictions = [predictions[i] for i in chosen]
            probabilities = None if probabilities is None else [probabilities[i] for i in chosen]
        item = _Pending(project_id, model_version_id, model, wants_probabilities, self._clock.seconds(), ids, X, predictions,
                        probabilities, policy)
        with self._guard:
            self._pending.append(item)
            self._buffered_rows += len(ids)
            while self._buffered_rows > MAX_BUFFERED_ROWS and len(self._pending) > 1:
                dropped = self._pending.pop(0)
                self._buffered_rows -= len(dropped.ids)
                self.lost += len(dropped.ids)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Commit what is buffered; -> rows written. Safe to call from any thread."""
        with self._flush_lock:
            with self._guard:
                items, self._pending, self._buffered_rows = self._pending, [], 0
            if not items:
                return 0
            try:
                rows = self._encode(items)
                with self._registry.transaction():
                    self._registry.insert_predictions(rows)
                    self._prune_if_due(items)
            except Exception:  # a locked or full disk: keep the records for the next flush
                log.exception("prediction log: writing %d record(s) failed; retrying", sum(len(i.ids) for i in items))
                with self._guard:
                    self._pending = items + self._pending
                    self._buffered_rows += sum(len(i.ids) for i in items)
                return 0
            self.written += len(rows)
            return len(rows)

    def _encode(self, items: list[_Pending]) -> list[tuple]:
        self._fill_probabilities(items)
        rows = []
        for item in items:
            rows += encode(item.project_id, item.model_version_id, iso_utc(item.at), item.ids, item.X, item.predictions,
                           item.probabilities, "serve")
        return rows

    def _fill_probabilities(self, items: list[_Pending]) -> None:
        """One predict_proba per model for the requests that did not ask for probabilities."""
        import numpy as np
        import pandas as pd

        if not getattr(self._thread_state, "openmp_limited", False):  # after the model loaded its runtime
            _one_openmp_thread()
            self._thread_state.openmp_limited = True
        missing: dict[int, list[_Pending]] = {}
        for item in items:
            if item.wants_probabilities and item.probabilities is None:
                missing.setdefault(id(item.model), []).append(item)
        for group in missing.values():
            frame = pd.concat([item.X for item in group], ignore_index=True)
            proba = np.asarray(group[0].model.predict_proba(frame), dtype=float)
            start = 0
            for item in group:
                item.probabilities = proba[start:start + len(item.ids)]
                start += len(item.ids)

    def _prune_if_due(self, items: list[_Pending], always: bool = False) -> None:
        now = time.monotonic()
        for item in items:
            self._policies[item.project_id] = item.policy
            self._since_prune[item.project_id] = self._since_prune.get(item.project_id, 0) + len(item.ids)
        for project_id, policy in self._policies.items():
            last = self._last_prune.get(project_id)
            # checked often enough that the log never holds more than 1 % over its row limit
            if (always or last is None or now - last >= PRUNE_SECONDS
                    or self._since_prune.get(project_id, 0) >= max(1, policy.max_rows // 100)):
                self._registry.prune_predictions(project_id, policy.max_rows,
                                                 cutoff(policy.max_days, self._clock.seconds()))
                self._last_prune[project_id] = now
                self._since_prune[project_id] = 0

    def stop(self, timeout: float = 5.0) -> None:
        """Flush everything buffered and prune to the limits, then end the thread."""
        self._stop.set()
        self._thread.join(timeout)
        self.flush()
        if self._policies:
            try:
                with self._registry.transaction():
                    self._prune_if_due([], always=True)
            except Exception:
                log.exception("prediction log: pruning at shutdown failed")
