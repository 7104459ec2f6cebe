"""The retraining policy's own state, one row per project (never parsed back from the audit log).

    change_point              dataset version where the latest change was detected (an alert
                              rule or the change detector): where "rows since the change" start
    backoff_champion_version  the champion a challenger was last rejected against ...
    backoff_unseen_rows       ... and how many unseen rows it had then (the next attempt
                              against that champion waits until they have doubled) ...
    backoff_champion_value    ... or until the champion is clearly worse than it scored then
    detector_json             the change detector's running statistics, for one champion
                              (decisions.DetectorState's document)
    budget_json               the retrain budget (labelled batches seen, the token bucket, the
                              challengers fitted, the drift under way, the hold streak):
                              decisions.RetrainBudget's document
"""

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from app.core.domain.decisions import DetectorState, RetrainBudget
from app.core.domain.entities import PolicyDecision

if TYPE_CHECKING:
    from app.core.store.registry import Registry


@dataclass(frozen=True)
class PolicyState:
    change_point: int | None = None
    backoff_champion_version: int | None = None
    backoff_unseen_rows: int = 0
    backoff_champion_value: float | None = None
    detector: DetectorState = field(default_factory=DetectorState)
    budget: RetrainBudget = field(default_factory=RetrainBudget)

    def but(self, **changes: Any) -> "PolicyState":
        return replace(self, **changes)


def read_policy_state(registry: "Registry", project_id: int) -> PolicyState:
    row = registry._query_one("SELECT * FROM policy_state WHERE project_id = ?", (project_id,))
    if row is None:
        return PolicyState()
    return PolicyState(change_point=row["change_point"], backoff_champion_version=row["backoff_champion_version"],
                       backoff_unseen_rows=row["backoff_unseen_rows"], backoff_champion_value=row["backoff_champion_value"],
                       detector=DetectorState.from_json(json.loads(row["detector_json"])),
                       budget=RetrainBudget.from_json(json.loads(row["budget_json"])))


def write_policy_state(registry: "Registry", project_id: int, state: PolicyState) -> None:
    """Insert or replace the project's row (call inside the transaction that records the decision)."""
    registry.conn.execute(
        "INSERT INTO policy_state (project_id, change_point, backoff_champion_version, backoff_unseen_rows, "
        "backoff_champion_value, detector_json, budget_json, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (project_id) DO UPDATE SET change_point = excluded.change_point, "
        "backoff_champion_version = excluded.backoff_champion_version, "
        "backoff_unseen_rows = excluded.backoff_unseen_rows, "
        "backoff_champion_value = excluded.backoff_champion_value, detector_json = excluded.detector_json, "
        "budget_json = excluded.budget_json, updated_at = excluded.updated_at",
        (project_id, state.change_point, state.backoff_champion_version, state.backoff_unseen_rows,
         state.backoff_champion_value, json.dumps(state.detector.to_json()),
         json.dumps(state.budget.to_json()), registry.clock()))


# --------------------------------------------------------------------------- the policy's reads
def _one_value(registry: "Registry", sql: str, *params: object) -> Any:
    """The single value of an aggregate query (which always returns one row)."""
    return registry.conn.execute(sql, params).fetchone()[0]


def dataset_version_at(registry: "Registry", project_id: int, at: str) -> int:
    """The newest dataset version created at or before `at` (0: none)."""
    return int(_one_value(registry, "SELECT COALESCE(MAX(version), 0) FROM dataset_versions "
                                    "WHERE project_id = ? AND created_at <= ?", project_id, at))


def labelled_rows_from(registry: "Registry", project_id: int, first_version: int) -> int:
    return int(_one_value(registry, "SELECT COALESCE(SUM(labelled_rows), 0) FROM dataset_versions "
                                    "WHERE project_id = ? AND version >= ?", project_id, first_version))


def labelled_versions_from(registry: "Registry", project_id: int, first_version: int) -> int:
    """How many dataset versions from `first_version` on hold labelled rows."""
    return int(_one_value(registry, "SELECT COUNT(*) FROM dataset_versions "
                                    "WHERE project_id = ? AND version >= ? AND labelled_rows > 0",
                          project_id, first_version))


def labelled_rows_since_last_training(registry: "Registry", project_id: int) -> int:
    last = registry._query_one("SELECT started_at FROM runs WHERE project_id = ? AND kind = 'train' "
                              "ORDER BY id DESC LIMIT 1", (project_id,))
    return int(_one_value(registry, "SELECT COALESCE(SUM(labelled_rows), 0) FROM dataset_versions "
                                    "WHERE project_id = ? AND created_at > ?", project_id,
                          last["started_at"] if last else ""))


def last_decided_challenger(registry: "Registry", project_id: int) -> int | None:
    """The challenger version named by the project's latest retrain decision."""
    row = registry._query_one("SELECT json_extract(details_json, '$.challenger_version') AS version FROM events "
                             "WHERE project_id = ? AND kind = 'retrain_decision' ORDER BY id DESC LIMIT 1",
                             (project_id,))
    return None if row is None else row["version"]


DECISION_EVENTS = ("retrain_decision", "restore_decision", "retrain_held", "retrain_hold_ended")
HOLD_ENDED = "hold_ended"  # the decision of a retrain_hold_ended event (its details name the next decision)


def decision_events(registry: "Registry", project_id: int, after_id: int = 0) -> list[PolicyDecision]:
    """The policy's decisions (retrain, reject, restore, hold, the end of a hold) from the audit log, oldest first."""
    marks = ", ".join("?" for _ in DECISION_EVENTS)
    rows = registry._query(
        f"SELECT id, at, kind, message, CASE kind WHEN 'retrain_hold_ended' THEN '{HOLD_ENDED}' "
        f"ELSE json_extract(details_json, '$.decision') END AS decision FROM events "
        f"WHERE project_id = ? AND id > ? AND kind IN ({marks}) ORDER BY id", (project_id, after_id, *DECISION_EVENTS))
    return [PolicyDecision.from_row(row) for row in rows]


def labelled_rows_between(registry: "Registry", project_id: int, first_version: int, last_version: int) -> int:
    return int(_one_value(registry, "SELECT COALESCE(SUM(labelled_rows), 0) FROM dataset_versions "
                                    "WHERE project_id = ? AND version BETWEEN ? AND ?", project_id, first_version,
                          last_version))
