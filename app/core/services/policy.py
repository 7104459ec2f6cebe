"""What to do after a monitoring cycle: nothing, alert, retrain and wait for approval,
or retrain and deploy automatically (the project's `policy` setting: off, alert,
approve, auto).

Triggers of a retrain (policies approve and auto):
  * a measured-metric rule fires in the cycle (metric_threshold, metric_drop); or
    the drift rule (drift_share) fires on a cycle whose batches had no labels to
    measure. Drift with a measured metric that holds is alerted but not retrained
    on (the decision rests on measured accuracy whenever labels exist), and the
    label-free estimate never triggers one: under concept drift it stays
    confidently wrong. While the same champion has already been challenged,
    another attempt waits until the training window's rows that the champion never
    saw have doubled (no retrain storm during a drift that retraining cannot fix);
  * optionally, `retrain_after_rows`: that many labelled rows arrived since the
    last training.

The gate: champion and challenger are scored on the same recent labelled rows that
neither was trained on (the newest third of the rows the champion has never seen;
the challenger trains on the rest of its window). The challenger is promoted only
if it is better by at least `margin` (in the metric's direction) and a one-sided
paired test at level `alpha` agrees: McNemar for accuracy, a paired bootstrap for
other metrics. A challenger that fails is kept as a version, not deployed.
"""

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from app.core.domain.errors import BusyError, KeelError, ValidationError
from app.core.domain.settings import ProjectSettings, higher_is_better
from app.core.ml import datasets
from app.core.ml.evaluation import is_better, mcnemar_test, paired_bootstrap_test
from app.core.store.workspace import FileLock

log = logging.getLogger("keel.policy")

MEASURED_RULES = ("metric_threshold", "metric_drop")
MIN_GATE_ROWS = 30
MAX_GATE_ROWS = 5000
GATE_SHARE = 1 / 3
BOOTSTRAP_RESAMPLES = 500
DECISIONS = ("none", "alert", "retrained_waiting", "retrained_deployed", "retrained_rejected")


@dataclass
class Outcome:
    decision: str
    message: str = ""
    details: dict = field(default_factory=dict)
    challenger_version: int | None = None


# --------------------------------------------------------------------------- the whole cycle
def monitor(keel, name: str, by: str = "user", progress=None, lock_timeout: float = 600.0) -> dict:
    """Sweep the inbox, run one monitoring cycle, apply the policy: `monitor --once`."""
    from app.core.services import inbox, monitoring

    report = progress or (lambda fraction, message: None)
    project = keel.project(name)
    report(0.0, "sweeping the inbox")
    swept = inbox.sweep(keel, name, by=by)
    lock = FileLock(keel.workspace.project_lock_path(name, "monitor"))
    if not lock.acquire(timeout=lock_timeout):
        raise BusyError(f"project {name!r} is being monitored by another process (lock {lock.path})")
    try:
        if keel.registry.current_deployment(project["id"]) is None:
            ingested = sum(1 for item in swept if item["status"] == "processed")
            raise KeelError(f"project {name!r} has no production model yet (deploy a version first); "
                            f"{ingested} inbox file(s) ingested")
        settings = ProjectSettings.from_dict(project["settings"])
        cycle = monitoring.run_cycle(keel, name, by, progress=lambda f, m: report(0.05 + 0.55 * f, m),
                                     alerts=settings.policy != "off")
        outcome = apply(keel, name, cycle, by, progress=lambda f, m: report(0.6 + 0.4 * f, m))
        if cycle.batches or outcome.decision != "none":
            with keel.registry.transaction():
                keel.registry.add_event(project, "monitored",
                                        f"{monitoring.summary(cycle)} -> {outcome.decision}"
                                        + (f": {outcome.message}" if outcome.message else ""),
                                        by, {"batches": [b.public() for b in cycle.batches],
                                             "alerts_opened": [a["id"] for a in cycle.alerts_opened],
                                             "decision": outcome.decision})
    finally:
        lock.release()
    report(1.0, outcome.decision)
    return {"project": name, "batches": [b.public() for b in cycle.batches],
            "alerts_opened": cycle.alerts_opened, "alerts_recovered": cycle.alerts_recovered,
            "decision": outcome.decision, "message": outcome.message,
            "production_version": keel.production_version(name), "challenger_version": outcome.challenger_version,
            "challenger_waiting": waiting_challenger(keel, name), "inbox": swept, "details": outcome.details,
            "traffic": cycle.traffic, "late_labels": cycle.late_labels}


def apply(keel, name: str, cycle, by: str = "user", progress=None) -> Outcome:
    project = keel.project(name)
    settings = ProjectSettings.from_dict(project["settings"])
    firing = {rule: message for rule, message in cycle.firing.items() if message}
    if settings.policy == "off":
        return Outcome("none", "policy off: results recorded, no alerts")
    fallback = Outcome("alert" if firing else "none", "; ".join(firing.values()))
    if settings.policy == "alert":
        return fallback
    if settings.policy == "approve" and waiting_challenger(keel, name) is not None:
        fallback.message = (fallback.message + "; " if fallback.message else "") + \
            f"challenger v{waiting_challenger(keel, name)} waits for approval"
        return fallback
    reasons = retrain_reasons(keel, project, settings, cycle.firing)
    if not reasons:
        return fallback
    try:
        return retrain_and_gate(keel, name, reasons, settings, progress)
    except ValidationError as exc:  # not enough (or not the right) data yet: say so, try again later
        log.info("retrain of %s skipped: %s", name, exc)
        return Outcome("alert" if firing else "none", f"retrain needed ({', '.join(reasons)}) but skipped: {exc}")


# --------------------------------------------------------------------------- triggers
def retrain_reasons(keel, project: dict, settings: ProjectSettings, cycle_rules: dict) -> list[str]:
    """cycle_rules: rule -> message ("" when it held) for the rules the cycle could decide."""
    reasons = []
    alert_rules = [rule for rule in MEASURED_RULES if cycle_rules.get(rule)]
    measured = any(rule in cycle_rules for rule in MEASURED_RULES)
    if cycle_rules.get("drift_share") and not measured:
        alert_rules.append("drift_share")
    if alert_rules:
        unseen = window_unseen_rows(keel, project, settings)
        last = last_attempt(keel, project)
        if unseen > 0 and (last is None or unseen >= 2 * last.get("unseen_rows", 0)):
            reasons.append("alert: " + ", ".join(alert_rules))
    if settings.retrain_after_rows:
        new_rows = labelled_rows_since_last_training(keel, project)
        if new_rows >= settings.retrain_after_rows:
            reasons.append(f"{new_rows} new labelled rows (retrain after {settings.retrain_after_rows})")
    return reasons


def champion_seen_until(keel, project: dict) -> int:
    """The newest dataset version the production model was trained on (or existed when it was deployed)."""
    deployment = keel.registry.current_deployment(project["id"])
    model_version = keel.registry.model_version_by_id(deployment["model_version_id"])
    used = keel.registry.run(model_version["run_id"])["dataset_versions"] if model_version.get("run_id") else []
    if used:
        return max(used)
    row = keel.registry.query_one(
        "SELECT COALESCE(MAX(version), 0) AS version FROM dataset_versions WHERE project_id = ? AND created_at <= ?",
        (project["id"], deployment["deployed_at"]))
    return row["version"]


def window_unseen_rows(keel, project: dict, settings: ProjectSettings) -> int:
    """Labelled rows in the training window that the production model never saw."""
    since = champion_seen_until(keel, project) + 1
    if settings.window == "adaptive":
        since = max(since, adaptive_start(keel, project) or 0)
    row = keel.registry.query_one(
        "SELECT COALESCE(SUM(labelled_rows), 0) AS n FROM dataset_versions WHERE project_id = ? AND version >= ?",
        (project["id"], since))
    rows = int(row["n"])
    return min(rows, settings.window) if isinstance(settings.window, int) else rows


def labelled_rows_since_last_training(keel, project: dict) -> int:
    last = keel.registry.query_one(
        "SELECT started_at FROM runs WHERE project_id = ? AND kind = 'train' ORDER BY id DESC LIMIT 1", (project["id"],))
    row = keel.registry.query_one(
        "SELECT COALESCE(SUM(labelled_rows), 0) AS n FROM dataset_versions WHERE project_id = ? AND created_at > ?",
        (project["id"], last["started_at"] if last else ""))
    return int(row["n"])


def last_attempt(keel, project: dict) -> dict | None:
    """The details of the last retrain decision against the current champion, if any."""
    production = keel.registry.current_deployment(project["id"])
    row = keel.registry.query_one(
        "SELECT details_json FROM events WHERE project_id = ? AND kind = 'retrain_decision' ORDER BY id DESC LIMIT 1",
        (project["id"],))
    if row is None:
        return None
    details = json.loads(row["details_json"])
    return details if details.get("champion_version") == production["version"] else None


def adaptive_start(keel, project: dict) -> int | None:
    """The adaptive window starts at the latest detected change (None: no change yet, use all data)."""
    row = keel.registry.query_one(
        "SELECT details_json FROM events WHERE project_id = ? AND kind = 'change_detected' ORDER BY id DESC LIMIT 1",
        (project["id"],))
    return json.loads(row["details_json"]).get("dataset_version") if row else None


def waiting_challenger(keel, name: str) -> int | None:
    project = keel.project(name)
    model_version_id = keel.registry.aliases(project["id"]).get("challenger")
    if model_version_id is None:
        return None
    version = keel.registry.model_version_by_id(model_version_id)["version"]
    return None if version == keel.production_version(name) else version


# --------------------------------------------------------------------------- retrain and gate
def split_gate(frame, unseen_rows: int):
    """(training part, gate part): the gate is the newest share of the rows the champion never saw."""
    unseen_rows = min(unseen_rows, len(frame))
    if unseen_rows < MIN_GATE_ROWS:
        raise ValidationError(f"{unseen_rows} new labelled row(s) since the production model was trained; "
                              f"the champion-challenger gate needs at least {MIN_GATE_ROWS}")
    gate_rows = int(min(MAX_GATE_ROWS, max(MIN_GATE_ROWS, round(unseen_rows * GATE_SHARE))))
    return frame.iloc[:-gate_rows].reset_index(drop=True), frame.iloc[-gate_rows:].reset_index(drop=True)


def retrain_and_gate(keel, name: str, reasons: list[str], settings: ProjectSettings, progress=None) -> Outcome:
    report = progress or (lambda fraction, message: None)
    project = keel.project(name)
    champion = keel.load_production(name)
    frame, used = keel.training_frame(name)
    seen_until = champion_seen_until(keel, project)
    unseen_rows = sum(row["labelled_rows"] for row in keel.registry.dataset_versions(project["id"])
                      if row["version"] in used and row["version"] > seen_until)
    unseen_rows = min(unseen_rows, len(frame))
    train_part, gate_part = split_gate(frame, unseen_rows)
    from app.core.ml.training import check_trainable

    check_trainable(train_part, project["schema"], "the challenger's training window")
    reason = "policy retrain: " + "; ".join(reasons)
    report(0.0, f"training a challenger on {len(train_part)} rows")
    trained = keel.train(name, by="policy", reason=reason, frame=train_part, dataset_versions_used=used,
                         progress=lambda f, m: report(0.8 * f, m))
    base = {"champion_version": champion.version, "challenger_version": trained["version"],
            "unseen_rows": unseen_rows, "train_rows": len(train_part), "reasons": reasons, "dataset_versions": used}
    try:
        challenger = keel.load_version(name, trained["version"])
        report(0.85, f"champion v{champion.version} vs challenger v{challenger.version} on {len(gate_part)} rows")
        verdict = gate(project, champion.model, challenger.model, gate_part, settings.margin, settings.alpha)
        return decide(keel, name, project, settings, {**base, **verdict})
    except BaseException as exc:
        record_gate_failure(keel, project, base, exc)
        raise


def record_gate_failure(keel, project: dict, details: dict, exc: BaseException) -> None:
    """The challenger is registered but its decision is not: record why, or the audit log has an
    unexplained version and (no decision to back off from) the next firing batch retrains again."""
    version = details["challenger_version"]
    try:
        last = keel.registry.query_one(
            "SELECT details_json FROM events WHERE project_id = ? AND kind = 'retrain_decision' ORDER BY id DESC LIMIT 1",
            (project["id"],))
        if last is not None and json.loads(last["details_json"]).get("challenger_version") == version:
            return  # the decision was committed; what failed came after it (the manifest file)
        error = f"{type(exc).__name__}: {exc}"
        with keel.registry.transaction():
            keel.registry.add_event(project, "retrain_decision",
                                    f"challenger v{version} kept but not deployed: the gate against champion "
                                    f"v{details['champion_version']} failed ({error})", "policy",
                                    {**details, "accepted": False, "error": error, "decision": "retrained_rejected"})
    except Exception:
        log.exception("could not record the failed gate of challenger v%s in %s", version, project["name"])


def decide(keel, name: str, project: dict, settings: ProjectSettings, details: dict) -> Outcome:
    version, champion_version = details["challenger_version"], details["champion_version"]
    metric = project["metric"]
    numbers = (f"challenger v{version} {metric} {details['challenger_value']:.4f} vs champion v{champion_version} "
               f"{details['champion_value']:.4f} on {details['gate_rows']} recent rows neither was trained on "
               f"({details['test']} p={details['p_value']:.4g}, margin {settings.margin:g}, alpha {settings.alpha:g})")
    if not details["accepted"]:
        decision, message = "retrained_rejected", f"{numbers}: not better, kept as v{version} but not deployed"
    elif settings.policy == "auto":
        decision, message = "retrained_deployed", f"{numbers}: promoted to production"
    else:
        decision, message = "retrained_waiting", f"{numbers}: waits for approval (keel approve {name})"
    # under the project lock (every deploy and rollback takes it): production cannot change between
    # the check that it is still the champion the challenger was gated against and the decision's write
    with keel._locked(name):
        production_version = keel.production_version(name)
        if production_version != champion_version:
            details = {**details, "production_version": production_version}
            if decision != "retrained_rejected":
                decision = "retrained_rejected"
                message = (f"{numbers}: not promoted, production changed from v{champion_version} to "
                           f"v{production_version} while the challenger was gated; kept as v{version} but not deployed")

        def record(project):
            if decision == "retrained_waiting":
                keel.registry.set_alias(project["id"], "challenger",
                                        keel.registry.model_version(project["id"], version)["id"])
            keel.registry.add_event(project, "retrain_decision", message, "policy", {**details, "decision": decision})

        if decision == "retrained_deployed":  # the deployment and the decision: one transaction
            keel._deploy_locked(name, version, by="policy", reason=message, extra_transaction_work=record)
        else:
            with keel.registry.transaction():
                record(project)
    return Outcome(decision, message, details, version)


def gate(project: dict, champion, challenger, gate_frame, margin: float, alpha: float) -> dict:
    """Score both models on the same rows and test whether the challenger is really better."""
    schema, task, metric = project["schema"], project["task"], project["metric"]
    X = datasets.to_model_frame(gate_frame, schema)
    y = datasets.target_array(gate_frame, schema)
    outputs = [_model_outputs(model, X, task, metric) for model in (champion, challenger)]
    values = [metric_value(task, metric, y, out, model) for out, model in zip(outputs, (champion, challenger))]
    if metric == "accuracy":
        test = mcnemar_test(outputs[0] == y, outputs[1] == y)
    else:
        # each side's probability columns are read with its own model's classes_: a challenger
        # that learned a class the champion never saw has more columns
        test = paired_bootstrap_test(
            lambda y_true, out, _m=metric: _bootstrap_metric(task, _m, y_true, out, champion),
            y, outputs[0], outputs[1], higher_is_better(metric), n_boot=BOOTSTRAP_RESAMPLES, seed=0,
            challenger_metric_fn=lambda y_true, out, _m=metric: _bootstrap_metric(task, _m, y_true, out, challenger))
    better = is_better(metric, values[1], values[0], margin)
    return {"metric": metric, "champion_value": values[0], "challenger_value": values[1],
            "gate_rows": int(len(y)), "test": test["test"], "p_value": float(test["p_value"]),
            "test_details": test, "better_by_margin": bool(better),
            "accepted": bool(better and test["p_value"] < alpha)}


def _model_outputs(model, X, task: str, metric: str):
    if metric in ("roc_auc", "log_loss") and task == "classification":
        return model.predict_proba(X)
    return np.asarray(model.predict(X))


def metric_value(task: str, metric: str, y, output, model) -> float:
    """One metric in plain numpy (the bootstrap calls this hundreds of times; sklearn's
    input checks would cost ~1 ms a call). Same values as sklearn.metrics (tested)."""
    y = np.asarray(y)
    output = np.asarray(output)
    if metric in ("roc_auc", "log_loss"):
        classes = np.asarray(model.classes_)
        positions = {value: index for index, value in enumerate(classes.tolist())}
        column = np.array([positions.get(value, -1) for value in y.tolist()])
        if metric == "log_loss":
            proba = np.clip(output / output.sum(axis=1, keepdims=True), np.finfo(float).eps, 1 - np.finfo(float).eps)
            picked = np.where(column >= 0, proba[np.arange(len(y)), np.maximum(column, 0)], np.finfo(float).eps)
            return float(-np.mean(np.log(picked)))
        columns = [1] if len(classes) == 2 else range(len(classes))
        areas = [_rank_auc(column == k, output[:, k]) for k in columns]
        return float(np.mean(areas))
    if metric == "accuracy":
        return float(np.mean(output == y))
    if metric == "balanced_accuracy":
        return float(np.mean([np.mean(output[y == c] == c) for c in np.unique(y)]))
    if metric == "f1_macro":
        labels = np.unique(np.concatenate([y, output]))
        return float(np.mean([2 * np.sum((y == c) & (output == c)) / (np.sum(y == c) + np.sum(output == c))
                              for c in labels]))
    errors = output.astype(float) - y.astype(float)
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    if metric == "r2":
        total = np.sum((y.astype(float) - y.astype(float).mean()) ** 2)
        return float(1 - np.sum(errors ** 2) / total) if total > 0 else float("nan")
    raise KeelError(f"unknown metric {metric!r}")


def _rank_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count half)."""
    from scipy.stats import rankdata

    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[is_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _bootstrap_metric(task, metric, y_true, output, model) -> float:
    try:
        return metric_value(task, metric, y_true, output, model)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- approval
def approve(keel, name: str, by: str = "user") -> dict:
    version = waiting_challenger(keel, name)
    if version is None:
        raise KeelError(f"no challenger is waiting for approval in project {name!r}")
    return keel.deploy(name, version, by=by, reason=f"challenger v{version} approved")
