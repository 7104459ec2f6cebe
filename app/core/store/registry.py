"""The SQLite registry: schema, migrations, and a small repository API.

One connection per thread (sqlite3 objects must not cross threads), WAL journal,
foreign keys on, busy_timeout set. Writes that must be all-or-nothing go through
`Registry.transaction()` (BEGIN IMMEDIATE; sqlite-utils calls inside it nest as
savepoints).
"""

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.alert_evidence import StoredEvidence, evidence_json
from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.domain.entities import (
    Alert,
    AlertNotice,
    BatchAwaitingLabels,
    DatasetVersion,
    Deployment,
    Event,
    LabelledPrediction,
    LateLabelTotals,
    LateMeasurement,
    LoggedPrediction,
    ModelVersion,
    MonitoredValue,
    MonitorResult,
    PredictionLogSummary,
    Project,
    Run,
    Schedule,
    Schema,
    TrafficWindow,
    VersionCounts,
)
from app.core.domain.errors import BusyError, IntegrityError, KeelError, NotFoundError
from app.core.domain.measurements import BatchDetails, WindowDetails
from app.core.store.schema import LATEST_SCHEMA_VERSION, MIGRATIONS

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 30_000
PLAIN_SQL_VALUES = (str, int, float, bytes, type(None))


def _quoted_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): a lone write commits at once. Python's default would
    # open an implicit transaction that holds the write lock until someone commits, blocking
    # every other writer; all-or-nothing work uses Registry.transaction() (BEGIN IMMEDIATE).
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA recursive_triggers=ON")  # as sqlite-utils sets it
    return conn


def current_schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(path: Path, target_version: int = LATEST_SCHEMA_VERSION, clock: Clock = SYSTEM_CLOCK) -> int:
    """Bring the database at path up to target_version, one step per transaction (each stamped at clock's now)."""
    try:
        conn = _connect(path)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise IntegrityError(f"{path} is not a SQLite database: damaged, or not a Keel registry") from None
        raise
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        version = current_schema_version(conn)
        if version > LATEST_SCHEMA_VERSION:
            raise KeelError(f"{Path(path).name} has registry schema v{version}, written by a newer Keel "
                            f"(this one knows up to v{LATEST_SCHEMA_VERSION}); upgrade Keel to open it")
        for step_version, script in MIGRATIONS:
            if version < step_version <= target_version:
                _apply_step(conn, step_version, script, clock)
                version = step_version
        return version
    finally:
        conn.close()


def _apply_step(conn: sqlite3.Connection, step_version: int, script: str, clock: Clock = SYSTEM_CLOCK) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process starting at the same moment may
        # have applied this step already (a second ALTER TABLE would fail)
        if current_schema_version(conn) < step_version:
            for statement in _split_sql(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (step_version, clock()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _split_sql(script: str) -> list[str]:
    """Split a script into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def _oldest_first(table: str, where: str, newest: int | None) -> str:
    """Rows of a versioned table oldest first; with newest=N only the last N, read from the end of the
    (project_id, version) index, so a long history costs nothing when few are asked for."""
    if newest is None:
        return f"SELECT * FROM {table} WHERE {where} ORDER BY version"
    return f"SELECT * FROM (SELECT * FROM {table} WHERE {where} ORDER BY version DESC LIMIT ?) ORDER BY version"


def _limited(params: list, newest: int | None) -> list:
    return params if newest is None else [*params, max(newest, 0)]


def _logged_prediction(row: tuple) -> LoggedPrediction:
    """A predictions row (id, model_version_id, at, record_id, inputs_json, prediction_json,
    probabilities_json[, source]), decoded."""
    prediction_id, model_version_id, at, record_id, inputs, prediction, probabilities, *source = row
    return LoggedPrediction(id=prediction_id, model_version_id=model_version_id, at=at, record_id=record_id,
                            inputs=_loads(inputs, []), prediction=_loads(prediction, None),
                            probabilities=_loads(probabilities, None), source=source[0] if source else None)


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


class NewFiles:
    """Files written for rows not committed yet: see Registry.files_then_rows."""

    def __init__(self, registry: "Registry"):
        self.paths: list[Path] = []
        self._registry = registry

    def add(self, path: Path) -> Path:
        """List a file this block has written (never one that was there before it)."""
        self.paths.append(Path(path))
        return path

    def commit(self) -> AbstractContextManager["Registry"]:
        """The transaction that records the rows naming the files."""
        return self._registry.transaction()


class Registry:
    """Repository over the registry database. Safe to share across threads. A time a write does
    not name (created_at, at, opened_at, ...) is the clock's now."""

    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK):
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        migrate(self.path, clock=clock)
        self._local = threading.local()
        self._all_connections: list[sqlite3.Connection] = []
        self._connections_guard = threading.Lock()

    # ----------------------------------------------------------------- plumbing
    @property
    def db(self) -> "sqlite_utils.Database":
        """This thread's connection wrapped by sqlite-utils, made on the first write: importing
        sqlite-utils imports pandas (0.5-1 s), which a read-only command never needs."""
        database = getattr(self._local, "db", None)
        if database is None:
            import sqlite_utils

            database = sqlite_utils.Database(self.conn, recursive_triggers=False)  # _connect set it
            self._local.db = database
        return database

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            with self._connections_guard:
                self._all_connections.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._connections_guard:
            for conn in self._all_connections:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # created in another thread that has gone; the GC closes it
            self._all_connections.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator["Registry"]:
        """One all-or-nothing write. Nested use becomes a savepoint."""
        conn = self.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        try:
            conn.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another writer
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            raise BusyError(f"the registry is busy in another process (locked for over "
                            f"{BUSY_TIMEOUT_MS / 1000:g} s); nothing was written: try again") from None
        try:
            yield self
        except BaseException:
            conn.rollback()
            raise
        else:
            try:
                conn.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (deferred foreign key, disk full, I/O error) leaves the
                # transaction open: every later write of this thread would nest in it, never
                # commit, and hold the write lock against every other connection
                conn.rollback()
                raise

    @contextmanager
    def files_then_rows(self) -> Iterator[NewFiles]:
        """Write files, then commit their rows in one transaction. The block writes each file (each
        one atomically) and lists it with add(), then records the rows under commit(). If anything
        in the block fails (a write, a check, a cancel, the commit itself), every listed file is
        removed: no file is left behind that no row names."""
        files = NewFiles(self)
        try:
            yield files
        except BaseException:
            for path in files.paths:
                path.unlink(missing_ok=True)
            raise

    def _query(self, sql: str, params: Iterable = ()) -> list[dict]:
        """Raw SQL in, rows as dicts out: for the store's own modules (app/core/store) only. Everything
        outside the store reads through the named reads, which hand out typed values."""
        cursor = self.conn.execute(sql, tuple(params))
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def _query_one(self, sql: str, params: Iterable = ()) -> dict | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def change_stamp(self) -> tuple:
        """A value that changes whenever any process commits to the registry."""
        row = self.conn.execute(
            "SELECT (SELECT MAX(id) FROM events), (SELECT COUNT(*) FROM events), "
            "(SELECT MAX(id) FROM monitor_results), (SELECT MAX(id) FROM alerts), "
            "(SELECT COUNT(*) FROM alerts WHERE status='open')"
        ).fetchone()
        return tuple(row)

    def table_counts(self) -> dict[str, int]:
        names = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {name: self.conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in sorted(names)}

    def _insert_row(self, table: str, fields: dict) -> int:
        """Inserts one row; its id. A row of plain values (text, numbers, bytes, None: every row Keel
        writes today) is inserted here, without sqlite-utils, whose import imports pandas (0.3 s) that
        a command like ingest does not otherwise need; any other value goes through sqlite-utils'
        conversions."""
        if all(isinstance(value, PLAIN_SQL_VALUES) for value in fields.values()):
            names = ", ".join(_quoted_name(name) for name in fields)
            cursor = self.conn.execute(f"INSERT INTO {_quoted_name(table)} ({names}) VALUES "
                                       f"({', '.join('?' * len(fields))})", tuple(fields.values()))
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)
        row_id = self.db.table(table).insert(fields).last_pk
        assert row_id is not None  # every table has an integer primary key
        return int(row_id)

    # ----------------------------------------------------------------- projects
    def insert_project(self, name: str, task: str, target: str, metric: str, schema: Schema, settings: dict) -> int:
        return self._insert_row("projects", dict(
            name=name,
            task=task,
            target=target,
            metric=metric,
            schema_json=json.dumps(schema.to_json()),
            settings_json=json.dumps(settings),
            created_at=self.clock(),
        ))

    def find_project(self, name: str) -> Project | None:
        """The project called name, or None: the one place that asks whether a project exists."""
        row = self._query_one("SELECT * FROM projects WHERE name = ?", (name,))
        return Project.from_row(row) if row else None

    def project(self, name: str) -> Project:
        project = self.find_project(name)
        if project is None:
            known = ", ".join(p.name for p in self.projects()) or "none yet"
            raise NotFoundError(f"unknown project {name!r} (projects: {known})")
        return project

    def projects(self) -> list[Project]:
        return [Project.from_row(r) for r in self._query("SELECT * FROM projects ORDER BY name")]

    def update_project_settings(self, project_id: int, settings: dict, metric: str) -> None:
        self.conn.execute(
            "UPDATE projects SET settings_json = ?, metric = ? WHERE id = ?",
            (json.dumps(settings), metric, project_id),
        )

    def delete_project(self, project_id: int) -> None:
        self.conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    # ----------------------------------------------------------------- datasets
    def next_number(self, table: str, project_id: int) -> int:
        row = self.conn.execute(f"SELECT COALESCE(MAX(version), 0) + 1 FROM {table} WHERE project_id = ?", (project_id,))
        return row.fetchone()[0]

    def insert_dataset_version(self, **fields: Any) -> int:
        fields.setdefault("created_at", self.clock())
        fields["report_json"] = json.dumps(fields.pop("report", {}))
        return self._insert_row("dataset_versions", fields)

    def dataset_versions(self, project_id: int, newest: int | None = None) -> list[DatasetVersion]:
        """Oldest first; newest=N: only the last N (read from the end of the index)."""
        rows = self._query(_oldest_first("dataset_versions", "project_id = ?", newest), _limited([project_id], newest))
        return [DatasetVersion.from_row(row) for row in rows]

    def unmonitored_dataset_versions(self, project_id: int, since: str) -> list[DatasetVersion]:
        """Dataset versions created at or after `since` that no monitoring result covers yet. A version
        made of late labels is not a batch: its rows are measured in the windows they label."""
        rows = self._query(
            "SELECT * FROM dataset_versions d WHERE d.project_id = ? AND d.created_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM monitor_results r WHERE r.dataset_version_id = d.id) "
            "AND NOT EXISTS (SELECT 1 FROM late_labels l WHERE l.dataset_version_id = d.id) ORDER BY d.version",
            (project_id, since))
        return [DatasetVersion.from_row(row) for row in rows]

    def dataset_version(self, project_id: int, version: int) -> DatasetVersion | None:
        row = self._query_one("SELECT * FROM dataset_versions WHERE project_id = ? AND version = ?", (project_id, version))
        return DatasetVersion.from_row(row) if row else None

    def latest_dataset_version_id(self, project_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM dataset_versions WHERE project_id = ? ORDER BY version DESC LIMIT 1", (project_id,)
        ).fetchone()
        return row[0] if row else None

    def dataset_version_by_hash(self, project_id: int, content_sha256: str) -> DatasetVersion | None:
        row = self._query_one(
            "SELECT * FROM dataset_versions WHERE project_id = ? AND content_sha256 = ?", (project_id, content_sha256)
        )
        return DatasetVersion.from_row(row) if row else None

    # ----------------------------------------------------------------- runs
    def insert_run(self, project_id: int, kind: str, **fields: Any) -> int:
        record = dict(project_id=project_id, kind=kind, started_at=fields.pop("started_at", self.clock()))
        for key in ("dataset_versions", "library_versions"):
            if key in fields:
                record[f"{key}_json"] = json.dumps(fields.pop(key))
        record.update(fields)
        return self._insert_row("runs", record)

    def log_params(self, run_id: int, params: dict) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO params (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), json.dumps(v, default=str)) for k, v in params.items()],
        )

    def log_metric(self, run_id: int, key: str, value: float, step: int = 0, timestamp: str | None = None) -> None:
        """One point, committed at once unless inside a caller's transaction (the hot path:
        one raw execute on an autocommit connection, not Table.insert)."""
        self.conn.execute(
            "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
            (run_id, key, value, step, timestamp or self.clock()),
        )

    def log_metrics(self, run_id: int, points: Iterable[tuple[str, float, int]], timestamp: str | None = None) -> None:
        """Many (key, value, step) points in one transaction."""
        stamp = timestamp or self.clock()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
                [(run_id, key, value, step, stamp) for key, value, step in points],
            )

    def metric_history(self, run_id: int, key: str) -> list[tuple[int, float, str]]:
        return self.conn.execute(
            "SELECT step, value, timestamp FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, id", (run_id, key)
        ).fetchall()

    def run_metrics(self, run_id: int) -> dict[str, float]:
        """Each key's latest value (highest step, then the last logged). One index seek per key
        (a loose index scan), so a run with a million points of history costs what one with
        ten does: `status` reads this for every version."""
        rows = self.conn.execute(
            "WITH RECURSIVE keys(key) AS ("
            " SELECT MIN(key) FROM metrics WHERE run_id = :run"
            " UNION ALL SELECT (SELECT MIN(key) FROM metrics WHERE run_id = :run AND key > keys.key)"
            " FROM keys WHERE keys.key IS NOT NULL) "
            "SELECT key, (SELECT value FROM metrics m WHERE m.run_id = :run AND m.key = keys.key"
            " ORDER BY m.step DESC, m.id DESC LIMIT 1) FROM keys WHERE key IS NOT NULL ORDER BY key",
            {"run": run_id}).fetchall()
        return {key: value for key, value in rows}

    def run_params(self, run_id: int) -> dict[str, Any]:
        """The run's params by name, as MLflow keeps them: the estimator's parameters and Keel's own
        facts (seed, train_rows, the training window...), each value of whatever JSON kind it was logged as."""
        rows = self.conn.execute("SELECT key, value FROM params WHERE run_id = ?", (run_id,)).fetchall()
        return {key: _loads(value, None) for key, value in rows}

    def runs(self, project_id: int) -> list[Run]:
        """The project's runs, newest first, with their final metrics."""
        rows = self._query("SELECT * FROM runs WHERE project_id = ? ORDER BY id DESC", (project_id,))
        metrics: dict[int, dict] = {}
        for point in self.conn.execute(
                "SELECT m.run_id, m.key, m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
                "WHERE r.project_id = ? ORDER BY m.step, m.id", (project_id,)):
            metrics.setdefault(point[0], {})[point[1]] = point[2]
        return [Run.from_row(row, metrics.get(row["id"], {})) for row in rows]

    def runs_with_metric(self, project_id: int, key: str, above: float) -> list[Run]:
        """The project's runs whose latest `key` is above a value, newest first."""
        rows = self._query(
            "SELECT r.* FROM runs r WHERE r.project_id = ? AND (SELECT m.value FROM metrics m WHERE m.run_id = r.id "
            "AND m.key = ? ORDER BY m.step DESC, m.id DESC LIMIT 1) > ? ORDER BY r.id DESC", (project_id, key, above))
        return [Run.from_row(row) for row in rows]

    def run(self, run_id: int) -> Run:
        row = self._query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"unknown run {run_id}")
        return Run.from_row(row)

    # ----------------------------------------------------------------- models
    def insert_model_version(self, **fields: Any) -> int:
        fields.setdefault("created_at", self.clock())
        fields["extra_trusted_types_json"] = json.dumps(fields.pop("extra_trusted_types", []))
        return self._insert_row("model_versions", fields)

    def model_versions(self, project_id: int, include_archived: bool = True,
                       newest: int | None = None) -> list[ModelVersion]:
        """Oldest first; newest=N: only the last N (read from the end of the index)."""
        where = "project_id = ?" + ("" if include_archived else " AND archived = 0")
        aliases = self.aliases(project_id)
        rows = self._query(_oldest_first("model_versions", where, newest), _limited([project_id], newest))
        return [self._model(row, aliases) for row in rows]

    def version_counts(self, project_id: int) -> VersionCounts:
        """How many model versions and dataset versions the project has."""
        def count(table: str) -> int:
            return self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE project_id = ?", (project_id,)).fetchone()[0]

        return VersionCounts(model_versions=count("model_versions"), dataset_versions=count("dataset_versions"))

    def model_version(self, project_id: int, version: int) -> ModelVersion:
        row = self._query_one("SELECT * FROM model_versions WHERE project_id = ? AND version = ?", (project_id, version))
        if row is None:
            known = [m["version"] for m in self._query("SELECT version FROM model_versions WHERE project_id = ?", (project_id,))]
            raise NotFoundError(f"unknown model version {version} (versions: {known or 'none yet'})")
        return self._model(row, self.aliases(project_id))

    def model_version_by_id(self, model_version_id: int) -> ModelVersion:
        row = self._query_one("SELECT * FROM model_versions WHERE id = ?", (model_version_id,))
        if row is None:
            raise NotFoundError(f"unknown model version id {model_version_id}")
        return self._model(row, self.aliases(row["project_id"]))

    @staticmethod
    def _model(row: dict, aliases: dict[str, int]) -> ModelVersion:
        return ModelVersion.from_row(row, (alias for alias, mv_id in aliases.items() if mv_id == row["id"]))

    def aliases(self, project_id: int) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT alias, model_version_id FROM model_aliases WHERE project_id = ?", (project_id,)
        ).fetchall()
        return dict(rows)

    def set_alias(self, project_id: int, alias: str, model_version_id: int | None) -> None:
        self.conn.execute("DELETE FROM model_aliases WHERE project_id = ? AND alias = ?", (project_id, alias))
        if model_version_id is not None:
            self.conn.execute(
                "INSERT INTO model_aliases (project_id, alias, model_version_id) VALUES (?, ?, ?)",
                (project_id, alias, model_version_id),
            )

    def set_archived(self, model_version_id: int, archived: bool) -> None:
        self.conn.execute("UPDATE model_versions SET archived = ? WHERE id = ?", (int(archived), model_version_id))

    # ----------------------------------------------------------------- deployments
    def current_deployment(self, project_id: int) -> Deployment | None:
        row = self._query_one(
            "SELECT d.*, m.version AS version FROM deployments d JOIN model_versions m ON m.id = d.model_version_id "
            "WHERE d.project_id = ? ORDER BY d.id DESC LIMIT 1",
            (project_id,),
        )
        return Deployment.from_row(row) if row else None

    def deployment(self, deployment_id: int) -> Deployment | None:
        row = self._query_one(
            "SELECT d.*, m.version AS version FROM deployments d JOIN model_versions m ON m.id = d.model_version_id "
            "WHERE d.id = ?",
            (deployment_id,),
        )
        return Deployment.from_row(row) if row else None

    def deployments(self, project_id: int) -> list[Deployment]:
        rows = self._query(
            "SELECT d.*, m.version AS version FROM deployments d JOIN model_versions m ON m.id = d.model_version_id "
            "WHERE d.project_id = ? ORDER BY d.id",
            (project_id,),
        )
        return [Deployment.from_row(row) for row in rows]

    def recently_deployed_versions(self, project_id: int, leave_out: int | None, limit: int) -> list[int]:
        """Distinct deployed versions that are not archived, most recently deployed first, at most
        `limit`: read from the newest deployment back, stopping once `limit` are found."""
        cursor = self.conn.execute(
            "SELECT m.version FROM deployments d JOIN model_versions m ON m.id = d.model_version_id "
            "WHERE d.project_id = ? AND m.archived = 0 ORDER BY d.id DESC", (project_id,))
        found: list[int] = []
        try:
            for (version,) in cursor:
                if version != leave_out and version not in found:
                    found.append(version)
                    if len(found) >= limit:
                        break
        finally:
            cursor.close()
        return found

    def insert_deployment(self, **fields: Any) -> int:
        fields.setdefault("deployed_at", self.clock())
        return self._insert_row("deployments", fields)

    # ----------------------------------------------------------------- monitoring
    def insert_monitor_result(self, *, details: BatchDetails = BatchDetails(), **fields: Any) -> int:
        fields.setdefault("at", self.clock())
        fields["drifted_features_json"] = json.dumps(fields.pop("drifted_features", []))
        fields["details_json"] = json.dumps(details.to_json(), default=float)
        return self._insert_row("monitor_results", fields)

    _MONITOR_RESULTS = ("SELECT r.*, m.version AS model_version, d.version AS dataset_version FROM monitor_results r "
                        "JOIN model_versions m ON m.id = r.model_version_id "
                        "LEFT JOIN dataset_versions d ON d.id = r.dataset_version_id ")

    def last_monitor_result(self, project_id: int) -> MonitorResult | None:
        """The project's newest monitoring result."""
        row = self._query_one(self._MONITOR_RESULTS + "WHERE r.project_id = ? ORDER BY r.id DESC LIMIT 1", (project_id,))
        return MonitorResult.from_row(row) if row else None

    def recent_monitor_values(self, project_id: int, limit: int) -> list[MonitoredValue]:
        """value and estimated_value of the newest `limit` results, newest first."""
        rows = self.conn.execute(
            "SELECT value, estimated_value FROM monitor_results WHERE project_id = ? ORDER BY id DESC LIMIT ?",
            (project_id, limit))
        return [MonitoredValue(value, estimated) for value, estimated in rows]

    def monitor_results(self, project_id: int, after_id: int = 0) -> list[MonitorResult]:
        rows = self._query(self._MONITOR_RESULTS + "WHERE r.project_id = ? AND r.id > ? ORDER BY r.id", (project_id, after_id))
        return [MonitorResult.from_row(row) for row in rows]

    # ----------------------------------------------------------------- prediction log
    def insert_predictions(self, rows: list[tuple]) -> None:
        """rows: (project_id, model_version_id, at, record_id, source, inputs_json, prediction_json,
        probabilities_json); one executemany (the caller's transaction makes it one commit)."""
        self.conn.executemany(
            "INSERT INTO predictions (project_id, model_version_id, at, record_id, source, inputs_json, "
            "prediction_json, probabilities_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def prune_predictions(self, project_id: int, max_rows: int, older_than: str) -> int:
        """Drop records beyond the newest max_rows and those logged before older_than; -> rows dropped."""
        dropped = self.conn.execute("DELETE FROM predictions WHERE project_id = ? AND at < ?",
                                    (project_id, older_than)).rowcount
        boundary = self.conn.execute(
            "SELECT id FROM predictions WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (project_id, max_rows)).fetchone()
        if boundary is not None:
            dropped += self.conn.execute("DELETE FROM predictions WHERE project_id = ? AND id <= ?",
                                         (project_id, boundary[0])).rowcount
        return dropped

    def prediction_log_summary(self, project_id: int) -> PredictionLogSummary:
        rows, oldest_at, newest_at, last_id = self.conn.execute(
            "SELECT COUNT(*), MIN(at), MAX(at), MAX(id) FROM predictions WHERE project_id = ?", (project_id,)).fetchone()
        return PredictionLogSummary(rows, oldest_at, newest_at, last_id or 0)

    def predictions(self, project_id: int, after_id: int = 0, up_to_id: int | None = None) -> list[LoggedPrediction]:
        """Logged records in id order."""
        rows = self.conn.execute(
            "SELECT id, model_version_id, at, record_id, inputs_json, prediction_json, probabilities_json, source "
            "FROM predictions WHERE project_id = ? AND id > ? AND id <= ? ORDER BY id",
            (project_id, after_id, up_to_id if up_to_id is not None else 2**62))
        return [_logged_prediction(row) for row in rows]

    def predictions_for_records(self, project_id: int, record_ids: list[str]) -> list[LoggedPrediction]:
        """Every logged record of these IDs (an ID scored twice has two), in id order per chunk of IDs."""
        found: list[LoggedPrediction] = []
        for start in range(0, len(record_ids), 500):
            chunk = record_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found += [_logged_prediction(row) for row in self.conn.execute(
                "SELECT id, model_version_id, at, record_id, inputs_json, prediction_json, probabilities_json "
                f"FROM predictions WHERE project_id = ? AND record_id IN ({marks}) ORDER BY id", (project_id, *chunk))]
        return found

    def predictions_volume(self, project_id: int, bucket_chars: int = 16) -> list[tuple[str, int]]:
        """Logged rows per time bucket: the first bucket_chars of the ISO time (16: per minute, 13: per hour)."""
        return self.conn.execute(
            "SELECT substr(at, 1, ?) AS bucket, COUNT(*) FROM predictions WHERE project_id = ? "
            "GROUP BY bucket ORDER BY bucket", (bucket_chars, project_id)).fetchall()

    # ----------------------------------------------------------------- traffic windows
    _TRAFFIC_WINDOWS = ("SELECT w.*, m.version AS model_version FROM traffic_windows w "
                        "JOIN model_versions m ON m.id = w.model_version_id ")

    def last_traffic_window(self, project_id: int) -> TrafficWindow | None:
        row = self._query_one(self._TRAFFIC_WINDOWS + "WHERE w.project_id = ? ORDER BY w.id DESC LIMIT 1", (project_id,))
        return TrafficWindow.from_row(row) if row else None

    def traffic_window(self, window_id: int) -> TrafficWindow:
        row = self._query_one(self._TRAFFIC_WINDOWS + "WHERE w.id = ?", (window_id,))
        if row is None:
            raise NotFoundError(f"unknown traffic window {window_id}")
        return TrafficWindow.from_row(row)

    def insert_traffic_window(self, *, details: WindowDetails = WindowDetails(), **fields: Any) -> int:
        fields["drifted_features_json"] = json.dumps(fields.pop("drifted_features", []))
        fields["details_json"] = json.dumps(details.to_json(), default=float)
        return self._insert_row("traffic_windows", fields)

    def traffic_windows(self, project_id: int, after_id: int = 0) -> list[TrafficWindow]:
        rows = self._query(self._TRAFFIC_WINDOWS + "WHERE w.project_id = ? AND w.id > ? ORDER BY w.id",
                          (project_id, after_id))
        return [TrafficWindow.from_row(row) for row in rows]

    def windows_of_predictions(self, project_id: int, prediction_ids: list[int]) -> dict[int, int]:
        """prediction id -> the traffic window that holds it (records not monitored yet have none)."""
        windows = self.conn.execute(
            "SELECT id, first_prediction_id, last_prediction_id FROM traffic_windows WHERE project_id = ?",
            (project_id,)).fetchall()
        found = {}
        for prediction_id in prediction_ids:
            for window_id, first, last in windows:
                if first <= prediction_id <= last:
                    found[prediction_id] = window_id
                    break
        return found

    def set_window_measurement(self, window_id: int, value: float | None, labelled_rows: int, at: str) -> None:
        self.conn.execute("UPDATE traffic_windows SET value = ?, labelled_rows = ?, labels_at = ? WHERE id = ?",
                          (value, labelled_rows, at, window_id))

    # ----------------------------------------------------------------- late labels
    def labelled_record_ids(self, project_id: int, record_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(record_ids), 500):
            chunk = record_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.conn.execute(
                f"SELECT record_id FROM late_labels WHERE project_id = ? AND record_id IN ({marks})",
                (project_id, *chunk)))
        return found

    def insert_late_labels(self, rows: list[tuple]) -> None:
        """rows: (project_id, record_id, label_json, dataset_version_id, at)."""
        self.conn.executemany(
            "INSERT INTO late_labels (project_id, record_id, label_json, dataset_version_id, at) VALUES (?, ?, ?, ?, ?)",
            rows)

    def late_labels_in_window(self, window: TrafficWindow) -> list[LabelledPrediction]:
        """The window's logged records that a late label has reached, with their labels."""
        rows = self.conn.execute(
            "SELECT p.record_id, p.prediction_json, p.probabilities_json, l.label_json FROM predictions p "
            "JOIN late_labels l ON l.project_id = p.project_id AND l.record_id = p.record_id "
            "WHERE p.project_id = ? AND p.id BETWEEN ? AND ? ORDER BY p.id",
            (window.project_id, window.first_prediction_id, window.last_prediction_id))
        return [LabelledPrediction(prediction=_loads(prediction, None), label=_loads(label, None),
                                   probabilities=_loads(probabilities, None), record_id=record_id)
                for record_id, prediction, probabilities, label in rows]

    def late_labels_for(self, project_id: int, record_ids: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        for start in range(0, len(record_ids), 500):
            chunk = record_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for record_id, label_json in self.conn.execute(
                    f"SELECT record_id, label_json FROM late_labels WHERE project_id = ? AND record_id IN ({marks})",
                    (project_id, *chunk)):
                found[record_id] = json.loads(label_json)
        return found

    def labels_dataset_version_ids(self, project_id: int) -> set[int]:
        """Dataset versions made of late labels (monitored through the windows they label, not as batches)."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT dataset_version_id FROM late_labels WHERE project_id = ?", (project_id,))}

    def insert_late_measurement(self, **fields: Any) -> int:
        fields.setdefault("at", self.clock())
        return self._insert_row("late_measurements", fields)

    def pending_late_measurements(self, project_id: int) -> list[LateMeasurement]:
        rows = self._query(
            "SELECT lm.*, d.version AS dataset_version, ld.version AS labels_dataset_version "
            "FROM late_measurements lm LEFT JOIN monitor_results r ON r.id = lm.monitor_result_id "
            "LEFT JOIN dataset_versions d ON d.id = r.dataset_version_id "
            "JOIN dataset_versions ld ON ld.id = lm.labels_dataset_version_id "
            "WHERE lm.project_id = ? AND lm.evaluated = 0 ORDER BY lm.id", (project_id,))
        return [LateMeasurement.from_row(row) for row in rows]

    def mark_late_measurements_evaluated(self, ids: list[int]) -> None:
        self.conn.executemany("UPDATE late_measurements SET evaluated = 1 WHERE id = ?", [(i,) for i in ids])

    # Unlabelled batches with IDs (monitor_results_awaiting_labels) and the labelled rows of each one's
    # newest late measurement (late_measurements_result).
    _AWAITING_LABELS = (
        "SELECT r.id, r.at, r.rows, r.metric, d.version AS dataset_version, lm.labelled_rows, lm.value "
        "FROM monitor_results r LEFT JOIN dataset_versions d ON d.id = r.dataset_version_id "
        "LEFT JOIN late_measurements lm ON lm.id = (SELECT MAX(id) FROM late_measurements "
        "WHERE monitor_result_id = r.id) "
        "WHERE r.project_id = ? AND r.labelled_rows = 0 AND json_extract(r.details_json, '$.has_ids') = 1 ")

    def batches_awaiting_labels(self, project_id: int) -> list[BatchAwaitingLabels]:
        """Batches unlabelled when monitored that have IDs, oldest first, with their newest late
        measurement's labelled_rows (0 without one) and value."""
        return [BatchAwaitingLabels.from_row(row) for row in self._query(self._AWAITING_LABELS + "ORDER BY r.id",
                                                                         (project_id,))]

    def late_label_totals(self, project_id: int, ended_before: str, coverage: float) -> LateLabelTotals:
        """Traffic windows and batches awaiting labels that ended before `ended_before` with less than
        `coverage` of their rows labelled: how many, their rows and their labelled rows."""
        below = "(CASE WHEN rows > 0 THEN labelled * 1.0 / rows ELSE 0.0 END) < ?"
        row = self._query_one(
            "SELECT COUNT(*) AS windows, COALESCE(SUM(rows), 0) AS rows, COALESCE(SUM(labelled), 0) AS labelled "
            "FROM (SELECT rows, labelled_rows AS labelled FROM traffic_windows WHERE project_id = ? AND ended_at < ? "
            f"UNION ALL SELECT rows, COALESCE(labelled_rows, 0) FROM ({self._AWAITING_LABELS} AND r.at < ?)) "
            f"WHERE {below}", (project_id, ended_before, project_id, ended_before, coverage))
        return LateLabelTotals(**row) if row else LateLabelTotals(windows=0, rows=0, labelled=0)

    def monitor_result_of_dataset(self, dataset_version_id: int) -> MonitorResult | None:
        row = self._query_one(self._MONITOR_RESULTS + "WHERE r.dataset_version_id = ? ORDER BY r.id LIMIT 1",
                             (dataset_version_id,))
        return MonitorResult.from_row(row) if row else None

    # ----------------------------------------------------------------- alerts
    def open_alerts(self, project_id: int) -> list[Alert]:
        rows = self._query("SELECT * FROM alerts WHERE project_id = ? AND status = 'open' ORDER BY id", (project_id,))
        return [Alert.from_row(row) for row in rows]

    def alerts(self, project_id: int) -> list[Alert]:
        return [Alert.from_row(row) for row in self._query("SELECT * FROM alerts WHERE project_id = ? ORDER BY id",
                                                          (project_id,))]

    def alert(self, project_id: int, alert_id: int) -> Alert | None:
        row = self._query_one("SELECT * FROM alerts WHERE id = ? AND project_id = ?", (alert_id, project_id))
        return Alert.from_row(row) if row else None

    def alert_status(self, alert_id: int) -> str | None:
        row = self.conn.execute("SELECT status FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return row[0] if row else None

    def open_alerts_after(self, alert_id: int) -> list[AlertNotice]:
        """Open alerts of every project with an id above alert_id, oldest first, with their project's name."""
        rows = self.conn.execute(
            "SELECT a.id, p.name, a.severity, a.message FROM alerts a JOIN projects p "
            "ON p.id = a.project_id WHERE a.status = 'open' AND a.id > ? ORDER BY a.id", (alert_id,))
        return [AlertNotice(*row) for row in rows]

    def last_alert_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]

    def insert_alert(self, *, details: StoredEvidence | None = None, **fields: Any) -> int:
        """details: what opened the alert (stored as its to_json(); None: nothing)."""
        fields.setdefault("opened_at", self.clock())
        fields["details_json"] = json.dumps(evidence_json(details), default=float)
        return self._insert_row("alerts", fields)

    def close_alert(self, alert_id: int, status: str) -> None:
        self.conn.execute(
            "UPDATE alerts SET status = ?, closed_at = ? WHERE id = ? AND status = 'open'", (status, self.clock(), alert_id)
        )

    # ----------------------------------------------------------------- events
    def add_event(
        self, project: Project | None, kind: str, message: str, by: str = "user", details: dict | None = None
    ) -> int:
        return self._insert_row("events", dict(
            project_id=project.id if project else None,
            project_name=project.name if project else None,
            at=self.clock(),
            kind=kind,
            by=by,
            message=message,
            details_json=json.dumps(details or {}, default=str),
        ))

    def recent_events(self, project_id: int, limit: int) -> list[Event]:
        """The project's newest events, newest first."""
        rows = self._query("SELECT * FROM events WHERE project_id = ? ORDER BY id DESC LIMIT ?", (project_id, limit))
        return [self._event(row) for row in rows]

    def events(self, project_id: int | None = None, after_id: int = 0, newest: int | None = None) -> list[Event]:
        """Events oldest first; newest=N: only the last N (read from the end of the index)."""
        where, params = ("id > ?", [after_id]) if project_id is None else ("project_id = ? AND id > ?",
                                                                            [project_id, after_id])
        if newest is None:
            rows = self._query(f"SELECT * FROM events WHERE {where} ORDER BY id", params)
        else:
            rows = self._query(f"SELECT * FROM (SELECT * FROM events WHERE {where} ORDER BY id DESC LIMIT ?) "
                              "ORDER BY id", [*params, max(newest, 0)])
        return [self._event(row) for row in rows]

    def version_created_event(self, project_id: int, version: int) -> Event | None:
        """The event that made a model version (trained or imported), the first if ever there were two:
        found by SQLite, not by loading the project's whole audit log; None for a version without one."""
        row = self._query_one(
            "SELECT * FROM events WHERE project_id = ? AND kind IN ('model_trained', 'model_imported') "
            "AND json_extract(details_json, '$.version') = ? ORDER BY id LIMIT 1", (project_id, version))
        return self._event(row) if row else None

    @staticmethod
    def _event(row: dict) -> Event:
        return Event(id=row["id"], project_id=row["project_id"], project_name=row["project_name"], at=row["at"],
                     kind=row["kind"], by=row["by"], message=row["message"], details=_loads(row["details_json"], {}))

    # ----------------------------------------------------------------- schedules
    _SCHEDULES = "SELECT s.*, p.name AS project FROM schedules s JOIN projects p ON p.id = s.project_id "

    def schedule(self, project_id: int) -> Schedule | None:
        row = self._query_one(self._SCHEDULES + "WHERE s.project_id = ?", (project_id,))
        return Schedule.from_row(row) if row else None

    def schedules(self) -> list[Schedule]:
        return [Schedule.from_row(row) for row in self._query(self._SCHEDULES + "ORDER BY p.name")]

    def upsert_schedule(self, project_id: int, kind: str, expression: str, enabled: bool = True) -> None:
        self.conn.execute(
            "INSERT INTO schedules (project_id, kind, expression, enabled) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(project_id) DO UPDATE SET kind = excluded.kind, expression = excluded.expression, "
            "enabled = excluded.enabled",
            (project_id, kind, expression, int(enabled)),
        )

    def mark_schedule_run(self, project_id: int, at: str | None = None) -> None:
        with self.transaction():
            self.conn.execute("UPDATE schedules SET last_run_at = ? WHERE project_id = ?", (at or self.clock(), project_id))

