"""The registry's tables, as the numbered migrations that build them (run by `registry.migrate`)."""

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL CHECK (task IN ('classification', 'regression')),
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_versions (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    labelled_rows INTEGER NOT NULL,
    source TEXT NOT NULL,
    parent_id INTEGER REFERENCES dataset_versions(id),
    report_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, version),
    UNIQUE (project_id, content_sha256)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    preset TEXT,
    seed INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    dataset_versions_json TEXT NOT NULL DEFAULT '[]',
    library_versions_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'finished'
);
CREATE TABLE IF NOT EXISTS params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL,
    step INTEGER NOT NULL DEFAULT 0,
    timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run_key ON metrics (run_id, key, step);
CREATE TABLE IF NOT EXISTS model_versions (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    artifact_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    extra_trusted_types_json TEXT NOT NULL DEFAULT '[]',
    notes TEXT NOT NULL DEFAULT '',
    archived INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, alias)
);
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
    replaced_deployment_id INTEGER REFERENCES deployments(id),
    deployed_at TEXT NOT NULL,
    by TEXT NOT NULL CHECK (by IN ('user', 'policy')),
    reason TEXT NOT NULL,
    is_rollback INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS monitor_results (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
    dataset_version_id INTEGER REFERENCES dataset_versions(id),
    at TEXT NOT NULL,
    rows INTEGER NOT NULL,
    labelled_rows INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    estimated_value REAL,
    drift_share REAL,
    prediction_drift REAL,
    drifted_features_json TEXT NOT NULL DEFAULT '[]',
    details_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'recovered')),
    closed_at TEXT,
    details_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id) ON DELETE SET NULL,
    project_name TEXT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    by TEXT NOT NULL,
    message TEXT NOT NULL,
    details_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS schedules (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('interval', 'cron')),
    expression TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_run_at TEXT
);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE OF at, kind, by, message, details_json ON events
BEGIN SELECT RAISE(ABORT, 'events is an append-only audit log'); END;
"""

SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS served_samples (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
    at TEXT NOT NULL,
    inputs_json TEXT NOT NULL,
    predictions_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_project_at ON events (project_id, id);
CREATE INDEX IF NOT EXISTS monitor_results_project ON monitor_results (project_id, id);
"""

# v1's trigger left events open to DELETE and to rewriting project_name. The only change
# allowed is the foreign key's own ON DELETE SET NULL when a project is deleted.
SCHEMA_V3 = """
CREATE TRIGGER IF NOT EXISTS events_append_only_owner BEFORE UPDATE OF project_id, project_name ON events
WHEN NEW.project_id IS NOT NULL OR NEW.project_name IS NOT OLD.project_name
BEGIN SELECT RAISE(ABORT, 'events is an append-only audit log'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events is an append-only audit log'); END;
"""

# Recovery: each dataset file's sha256 (verify, backup), a model file removed by retention
# (the row stays: the audit log and the monitoring results still name it), workspace-wide
# settings (scheduled backups, retention).
SCHEMA_V4 = """
ALTER TABLE dataset_versions ADD COLUMN file_sha256 TEXT;
ALTER TABLE model_versions ADD COLUMN pruned_at TEXT;
CREATE TABLE IF NOT EXISTS workspace_settings (
    key TEXT PRIMARY KEY,
    value_json TEXT NOT NULL
);
"""

# Indexes for the lookups that grow with history: without the first, finding the batches
# still to monitor scanned monitor_results once per dataset version (quadratic growth).
SCHEMA_V5_INDEXES = """
CREATE INDEX IF NOT EXISTS monitor_results_dataset ON monitor_results (dataset_version_id);
CREATE INDEX IF NOT EXISTS alerts_project_status ON alerts (project_id, status, id);
CREATE INDEX IF NOT EXISTS deployments_project ON deployments (project_id, id);
CREATE INDEX IF NOT EXISTS served_samples_project ON served_samples (project_id, id);
CREATE INDEX IF NOT EXISTS runs_project ON runs (project_id);
"""

# The prediction log (what the server and `predict` scored, with an ID per row; it replaces
# served_samples, which nothing read), late labels joined to it by ID, and traffic windows:
# the logged traffic between two monitoring cycles, monitored like an unlabelled batch.
SCHEMA_V6_TRAFFIC = """
DROP TABLE IF EXISTS served_samples;
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    record_id TEXT NOT NULL,
    source TEXT NOT NULL,
    inputs_json TEXT NOT NULL,
    prediction_json TEXT NOT NULL,
    probabilities_json TEXT
);
CREATE INDEX IF NOT EXISTS predictions_project ON predictions (project_id, id);
CREATE INDEX IF NOT EXISTS predictions_record ON predictions (project_id, record_id);
CREATE INDEX IF NOT EXISTS predictions_at ON predictions (project_id, at);
CREATE TABLE IF NOT EXISTS traffic_windows (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    model_version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    first_prediction_id INTEGER NOT NULL,
    last_prediction_id INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    monitored_at TEXT NOT NULL,
    rows INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    labelled_rows INTEGER NOT NULL DEFAULT 0,
    labels_at TEXT,
    estimated_value REAL,
    drift_share REAL,
    prediction_drift REAL,
    drifted_features_json TEXT NOT NULL DEFAULT '[]',
    details_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS traffic_windows_project ON traffic_windows (project_id, id);
CREATE TABLE IF NOT EXISTS late_labels (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    record_id TEXT NOT NULL,
    label_json TEXT NOT NULL,
    dataset_version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    PRIMARY KEY (project_id, record_id)
);
CREATE INDEX IF NOT EXISTS late_labels_version ON late_labels (dataset_version_id);
CREATE TABLE IF NOT EXISTS late_measurements (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    traffic_window_id INTEGER REFERENCES traffic_windows(id) ON DELETE CASCADE,
    monitor_result_id INTEGER REFERENCES monitor_results(id) ON DELETE CASCADE,
    labels_dataset_version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    rows INTEGER NOT NULL,
    labelled_rows INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    evaluated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS late_measurements_project ON late_measurements (project_id, id);
"""

# Migration 7: the retraining policy's state (app/core/store/policy_state.py), filled from
# what the audit log held until now.
POLICY_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_state (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    change_point INTEGER,
    backoff_champion_version INTEGER,
    backoff_unseen_rows INTEGER NOT NULL DEFAULT 0,
    detector_json TEXT NOT NULL DEFAULT '{}',
    budget_json TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL
);
INSERT OR IGNORE INTO policy_state (project_id, change_point, backoff_champion_version, backoff_unseen_rows, updated_at)
SELECT p.id,
    (SELECT json_extract(e.details_json, '$.dataset_version') FROM events e
     WHERE e.project_id = p.id AND e.kind = 'change_detected' ORDER BY e.id DESC LIMIT 1),
    (SELECT json_extract(e.details_json, '$.champion_version') FROM events e
     WHERE e.project_id = p.id AND e.kind = 'retrain_decision' ORDER BY e.id DESC LIMIT 1),
    COALESCE((SELECT json_extract(e.details_json, '$.unseen_rows') FROM events e
     WHERE e.project_id = p.id AND e.kind = 'retrain_decision' ORDER BY e.id DESC LIMIT 1), 0),
    strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM projects p;
"""

# Migration 8: the champion's gate score at the rejection that started a back-off.
POLICY_BACKOFF_VALUE_SCHEMA = """
ALTER TABLE policy_state ADD COLUMN backoff_champion_value REAL;
UPDATE policy_state SET backoff_champion_value = (
    SELECT json_extract(e.details_json, '$.champion_value') FROM events e
    WHERE e.project_id = policy_state.project_id AND e.kind = 'retrain_decision' ORDER BY e.id DESC LIMIT 1);
"""


# What a monitoring cycle reads that grows with history, read through indexes: the batches still
# waiting for late labels (unlabelled when monitored, with an ID column) and each monitoring
# result's late measurements, newest last.
SCHEMA_V9_LABEL_COVERAGE = """
CREATE INDEX IF NOT EXISTS monitor_results_awaiting_labels ON monitor_results (project_id, at)
    WHERE labelled_rows = 0 AND json_extract(details_json, '$.has_ids') = 1;
CREATE INDEX IF NOT EXISTS late_measurements_result ON late_measurements (monitor_result_id, id);
CREATE INDEX IF NOT EXISTS traffic_windows_ended ON traffic_windows (project_id, ended_at);
"""


# Each entry takes the schema from version N-1 to N. Never edit a shipped entry: add one.
MIGRATIONS: list[tuple[int, str]] = [(1, SCHEMA_V1), (2, SCHEMA_V2), (3, SCHEMA_V3), (4, SCHEMA_V4),
                                   (5, SCHEMA_V5_INDEXES), (6, SCHEMA_V6_TRAFFIC),
                                   (7, POLICY_STATE_SCHEMA), (8, POLICY_BACKOFF_VALUE_SCHEMA),
                                   (9, SCHEMA_V9_LABEL_COVERAGE)]
LATEST_SCHEMA_VERSION = MIGRATIONS[-1][0]
